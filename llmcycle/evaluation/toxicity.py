"""Toxicity scoring behind one interface: ``ToxicityScorer(texts) -> list of P(toxic) in [0, 1]``.

* ``ProfanityCheckScorer``: the offline default, ``alt-profanity-check``'s linear classifier
  (``profanity_check.predict_prob``); fast, no model download.
* ``ClassifierScorer``: any Hugging Face sequence-classification model (hub id, local directory,
  a ``LoadedModel`` or a ``(model, tokenizer)`` pair), e.g.
  ``facebook/roberta-hate-speech-dynabench-r4-target`` with ``toxic_label="hate"``. The toxic class
  is found BY NAME in ``config.id2label`` (case-insensitive), never by position: the course lab's
  reward read a score-sorted list by position and so rewarded the wrong class on some outputs.
* ``get_toxicity_scorer(name_or_id)``: ``"profanity-check"`` (default) or any registered name;
  anything else is taken as a classifier's hub id or directory.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation._checks import check_positive_int, check_texts
from llmcycle.models.loader import LoadedModel, load_model

DEFAULT_TOXICITY_SCORER = "profanity-check"


@runtime_checkable
class ToxicityScorer(Protocol):
    """A callable from texts to the probability that each is toxic, in [0, 1]."""

    name: str

    def __call__(self, texts: Sequence[str]) -> list[float]: ...


class ProfanityCheckScorer:
    """``alt-profanity-check``'s offline classifier: P(profane/offensive) of each text."""

    name = "profanity-check"

    def __call__(self, texts: Sequence[str]) -> list[float]:
        items = check_texts(texts, "texts", allow_empty=True)
        if not items:
            return []
        try:
            from profanity_check import predict_prob  # loads scikit-learn and a pickled model: lazy
        except ImportError:
            raise LLMCycleError(
                "toxicity scorer 'profanity-check' needs the PyPI package alt-profanity-check: "
                "pip install alt-profanity-check"
            ) from None
        return [float(p) for p in predict_prob(items)]


def find_label_id(id2label: dict[Any, str], label: str) -> int:
    """The class id whose name is ``label`` (exact match first, then case-insensitive)."""
    if not isinstance(label, str) or not label:
        raise LLMCycleError(f"toxic_label: expected a label name such as 'hate' or 'toxic', got {label!r}")
    names = {int(i): str(n) for i, n in id2label.items()}
    exact = [i for i, n in names.items() if n == label]
    matches = exact or [i for i, n in names.items() if n.lower() == label.lower()]
    available = ", ".join(repr(names[i]) for i in sorted(names))
    if not matches:
        raise LLMCycleError(f"toxic_label: {label!r} is not a label of this classifier; available: {available}")
    if len(matches) > 1:
        raise LLMCycleError(f"toxic_label: {label!r} matches several labels ({available}); give the exact name")
    return matches[0]


def _resolve_model(model_or_id: Any, tokenizer: Any) -> tuple[Any, Any, str]:
    """(model, tokenizer, name) from a source string, a LoadedModel, a (model, tokenizer) pair or a model."""
    if isinstance(model_or_id, str):
        loaded = load_model(model_or_id)
        if loaded.kind != "classifier":
            raise LLMCycleError(f"model: {model_or_id} is a {loaded.kind} model, not a sequence classifier "
                                "(an ...ForSequenceClassification model with id2label)")
        return loaded.model, tokenizer or loaded.tokenizer, model_or_id
    if isinstance(model_or_id, LoadedModel):
        if model_or_id.kind != "classifier":
            raise LLMCycleError(f"model: {model_or_id.source} is a {model_or_id.kind} model, not a sequence classifier")
        return model_or_id.model, tokenizer or model_or_id.tokenizer, model_or_id.source
    if isinstance(model_or_id, tuple) and len(model_or_id) == 2:
        model_or_id, tokenizer = model_or_id
    if tokenizer is None:
        raise LLMCycleError("tokenizer: a model object needs its tokenizer (pass tokenizer=, or a (model, tokenizer) "
                            "pair, or a hub id / directory)")
    if not hasattr(getattr(model_or_id, "config", None), "id2label"):
        raise LLMCycleError(f"model: expected a Hugging Face sequence classifier, got {type(model_or_id).__name__}")
    return model_or_id, tokenizer, getattr(model_or_id.config, "_name_or_path", "") or type(model_or_id).__name__


def _max_length(model: Any, tokenizer: Any) -> int:
    """The longest input the model takes: the tokenizer's limit, capped by the position table."""
    limits = [getattr(tokenizer, "model_max_length", None), getattr(model.config, "max_position_embeddings", None)]
    limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]  # HF uses 1e30 for "no limit"
    return min(limits) if limits else 512


class ClassifierScorer:
    """P(``toxic_label``) from a sequence classifier: softmax over its labels, batched, truncated.

    Args:
        model_or_id: hub id or local directory (loaded with ``llmcycle.models.load_model``), a
            ``LoadedModel``, a ``(model, tokenizer)`` pair, or a model (then pass ``tokenizer``).
        toxic_label: name of the toxic class in ``config.id2label`` (case-insensitive), e.g.
            ``"hate"`` for facebook/roberta-hate-speech-dynabench-r4-target, ``"toxic"`` for
            s-nlp/roberta_toxicity_classifier. An unknown name is an error listing the labels.
        tokenizer: the model's tokenizer when ``model_or_id`` is a model object.
        batch_size: texts per forward pass.
        max_length: truncation length; default the model's own limit.
    """

    def __init__(self, model_or_id: Any, toxic_label: str = "hate", *, tokenizer: Any = None,
                 batch_size: int = 32, max_length: int | None = None) -> None:
        self.model, self.tokenizer, source = _resolve_model(model_or_id, tokenizer)
        self.label_id = find_label_id(self.model.config.id2label, toxic_label)
        self.toxic_label = str(self.model.config.id2label[self.label_id])
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.max_length = _max_length(self.model, self.tokenizer) if max_length is None else \
            check_positive_int(max_length, "max_length")
        self.name = f"{source}:{self.toxic_label}"

    def __call__(self, texts: Sequence[str]) -> list[float]:
        import torch

        items = check_texts(texts, "texts", allow_empty=True)
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        out: list[float] = []
        try:
            for start in range(0, len(items), self.batch_size):
                enc = self.tokenizer(items[start:start + self.batch_size], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length)
                with torch.no_grad():
                    logits = self.model(**{k: v.to(device) for k, v in enc.items()}).logits  # (B, labels)
                probs = torch.softmax(logits.float(), dim=-1)[:, self.label_id]  # (B,)
                out.extend(float(p) for p in probs.cpu())
        finally:
            self.model.train(was_training)
        return out


TOXICITY_SCORERS: dict[str, Callable[..., ToxicityScorer]] = {"profanity-check": ProfanityCheckScorer}


def register_toxicity_scorer(name: str, factory: Callable[..., ToxicityScorer]) -> None:
    """Make ``get_toxicity_scorer(name, **kw)`` return ``factory(**kw)``; names must be new."""
    if not isinstance(name, str) or not name.strip():
        raise LLMCycleError(f"name: expected a non-empty scorer name, got {name!r}")
    if name in TOXICITY_SCORERS:
        raise LLMCycleError(f"name: toxicity scorer {name!r} is already registered")
    if not callable(factory):
        raise LLMCycleError(f"factory: expected a callable returning a ToxicityScorer, got {type(factory).__name__}")
    TOXICITY_SCORERS[name] = factory


def get_toxicity_scorer(name_or_id: str = DEFAULT_TOXICITY_SCORER, **kwargs: Any) -> ToxicityScorer:
    """A registered scorer by name (``"profanity-check"``), else ``ClassifierScorer(name_or_id, **kwargs)``.

    Unregistered names are hub ids or directories of classifiers; offline, a hub id fails with
    the loader's one-line message listing what to pass instead.
    """
    if not isinstance(name_or_id, str) or not name_or_id.strip():
        raise LLMCycleError(f"toxicity scorer: expected a name ({', '.join(TOXICITY_SCORERS)}) or a classifier "
                            f"hub id / directory, got {name_or_id!r}")
    factory = TOXICITY_SCORERS.get(name_or_id, ClassifierScorer)
    args = () if name_or_id in TOXICITY_SCORERS else (name_or_id,)
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as exc:
        raise LLMCycleError(f"toxicity scorer {name_or_id!r}: {exc}") from None
    return factory(*args, **kwargs)


def toxicity(texts: Sequence[str], scorer: str | ToxicityScorer = DEFAULT_TOXICITY_SCORER,
             threshold: float = 0.5) -> dict[str, Any]:
    """Toxicity of a set of texts: ``{"mean", "max", "toxic_fraction", "scores", "scorer"}``.

    ``toxic_fraction`` is the share of texts with P(toxic) >= ``threshold``.
    """
    items = check_texts(texts, "texts")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise LLMCycleError(f"threshold: expected a probability in [0, 1], got {threshold!r}")
    fn = get_toxicity_scorer(scorer) if isinstance(scorer, str) else scorer
    if not callable(fn):
        raise LLMCycleError(f"scorer: expected a name or a callable texts -> probabilities, got {type(fn).__name__}")
    scores = [float(s) for s in fn(items)]
    if len(scores) != len(items):
        raise LLMCycleError(f"scorer: returned {len(scores)} scores for {len(items)} texts")
    return {"mean": sum(scores) / len(scores), "max": max(scores),
            "toxic_fraction": sum(s >= threshold for s in scores) / len(scores), "scores": scores,
            "scorer": getattr(fn, "name", type(fn).__name__)}
