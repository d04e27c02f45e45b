"""Reward sources behind one interface: ``source(prompts, responses) -> list of floats``, higher is better.

* ``ClassifierReward``: a Hugging Face sequence classifier (hub id, local directory, ``LoadedModel`` or
  ``(model, tokenizer)``); the rewarded class is chosen BY NAME in ``config.id2label`` (e.g.
  ``nothate`` of facebook/roberta-hate-speech-dynabench-r4-target), never by position. Its logit
  or its softmax probability.
* ``ProfanityReward``: the offline ``alt-profanity-check`` classifier; ``1 - P(toxic)`` or the logit
  ``log((1 - p) / p)``.
* ``TrainedRewardModel``: a scalar-head model, e.g. one saved by
  ``llmcycle.alignment.reward_model.train_reward_model`` (or any hub reward model with one output).
* ``CallableReward``: any Python function ``f(prompts, responses) -> floats``, checked on every call.
* ``RewardNormalizer`` / ``NormalizedReward``: running mean/std over batches, with a state dict so a
  PPO checkpoint resumes it.

``RewardConfig`` picks and configures one of them; ``make_reward(cfg)`` builds it. Errors name the
config field (``reward.model``, ``reward.label``, ``reward.callable``).
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import Field, field_validator

from llmcycle.core.config import Device, StageConfig
from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.evaluation._checks import check_positive_int, check_texts
from llmcycle.evaluation.toxicity import ProfanityCheckScorer, _max_length, _resolve_model, find_label_id
from llmcycle.models.loader import resolve_device

Score = Literal["response", "prompt_and_response"]
SOURCES = ("classifier", "profanity", "reward_model", "callable")
OUTPUTS = {"classifier": ("logit", "probability"), "profanity": ("one_minus_prob", "logit")}
DEFAULT_OUTPUT = {"classifier": "logit", "profanity": "one_minus_prob"}
RESULT_FILE = "reward_model.json"  # what a trained reward model's folder holds beside its weights


@runtime_checkable
class RewardSource(Protocol):
    """A callable from (prompts, responses) to one reward per response; higher is better."""

    name: str

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]: ...


def check_batch(prompts: Any, responses: Any) -> tuple[list[str], list[str]]:
    """``(prompts, responses)`` as two lists of strings of the same length (empty strings allowed)."""
    p = check_texts(prompts, "prompts", allow_empty=True)
    r = check_texts(responses, "responses", allow_empty=True)
    if len(p) != len(r):
        raise LLMCycleError(f"prompts: {len(p)} items but responses has {len(r)}; pass one prompt per response")
    return p, r


def check_rewards(values: Any, n: int | None, name: str) -> list[float]:
    """``values`` as ``n`` finite floats (any number when ``n`` is None); anything else is an error naming the
    source ``name`` and the index."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise LLMCycleError(f"reward {name!r}: expected a sequence of numbers, got {type(values).__name__}")
    items = list(values.tolist() if hasattr(values, "tolist") else values)  # numpy / torch arrays
    if n is not None and len(items) != n:
        raise LLMCycleError(f"reward {name!r}: returned {len(items)} rewards for {n} responses; return one each")
    out = []
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise LLMCycleError(f"reward {name!r}: item {i} is {type(v).__name__} {v!r}, not a number")
        if not math.isfinite(v):
            raise LLMCycleError(f"reward {name!r}: item {i} is {v}; rewards must be finite (no NaN or inf)")
        out.append(float(v))
    return out


def join_prompt_response(prompts: Sequence[str], responses: Sequence[str], score: Score) -> list[str]:
    """The texts a single-text classifier reads: the response, or ``prompt + response``."""
    if score == "response":
        return list(responses)
    return [f"{p} {r}" if p and r else p + r for p, r in zip(prompts, responses)]


def _forward_batches(model: Any, tokenizer: Any, first: list[str], second: list[str] | None,
                     batch_size: int, max_length: int) -> Any:
    """Logits of the texts (or text pairs), batched, no grad, truncated: a float tensor (N, labels) on CPU."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, len(first), batch_size):
            pair = second[start:start + batch_size] if second is not None else None
            enc = tokenizer(first[start:start + batch_size], pair, return_tensors="pt", padding=True,
                            truncation=True, max_length=max_length)
            with torch.no_grad():
                chunks.append(model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu())  # (B, L)
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, model.config.num_labels)


def _check_choice(value: Any, field: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise LLMCycleError(f"{field}: unknown value {value!r}; valid: {', '.join(valid)}")
    return value


def _move(model: Any, device: str | None) -> None:
    if device is not None:
        model.to(resolve_device(device))


class ClassifierReward:
    """The logit or probability of one NAMED class of a sequence classifier, as the reward.

    Args:
        model_or_id: hub id or local directory (loaded with ``llmcycle.models.load_model``), a
            ``LoadedModel``, a ``(model, tokenizer)`` pair, or a model (then pass ``tokenizer``).
        label: name of the rewarded class in ``config.id2label`` (exact, else case-insensitive),
            e.g. ``"nothate"``. An unknown name is an error listing the model's labels.
        output: ``"logit"`` (the raw logit of ``label``) or ``"probability"`` (its softmax probability).
        score: ``"response"`` scores the response alone; ``"prompt_and_response"`` scores
            ``prompt + " " + response`` as one text (classifiers are trained on single texts).
        tokenizer: the model's tokenizer when ``model_or_id`` is a model object.
        batch_size: texts per forward pass.
        max_length: truncation length; default the model's own limit.
        device: move the model there (``cpu``, ``cuda``, ``auto``); None leaves it where it is.
    """

    def __init__(self, model_or_id: Any, label: str, *, output: str = "logit", score: Score = "response",
                 tokenizer: Any = None, batch_size: int = 32, max_length: int | None = None,
                 device: str | None = None) -> None:
        self.output = _check_choice(output, "output", OUTPUTS["classifier"])
        self.score = _check_choice(score, "score", ("response", "prompt_and_response"))
        if isinstance(model_or_id, Path):
            model_or_id = str(model_or_id)
        self.model, self.tokenizer, source = _resolve_model(model_or_id, tokenizer)
        try:
            self.label_id = find_label_id(self.model.config.id2label, label)
        except LLMCycleError as exc:  # find_label_id speaks of toxicity scorers' "toxic_label"
            raise LLMCycleError(str(exc).replace("toxic_label:", "label:", 1)) from None
        self.label = str(self.model.config.id2label[self.label_id])
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.max_length = _max_length(self.model, self.tokenizer) if max_length is None else \
            check_positive_int(max_length, "max_length")
        _move(self.model, device)
        self.name = f"{source}:{self.label}:{self.output}"

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        import torch

        p, r = check_batch(prompts, responses)
        logits = _forward_batches(self.model, self.tokenizer, join_prompt_response(p, r, self.score), None,
                                  self.batch_size, self.max_length)  # (N, labels)
        if self.output == "probability":
            logits = torch.softmax(logits, dim=-1)
        return [float(x) for x in logits[:, self.label_id]]


class ProfanityReward:
    """``alt-profanity-check``'s offline classifier as a reward: ``1 - P(toxic)`` or its logit.

    Args:
        output: ``"one_minus_prob"`` (in [0, 1]) or ``"logit"``, ``log((1 - p) / p)`` with ``p``
            clipped to ``[eps, 1 - eps]`` so it stays finite (unbounded rewards help PPO tell
            "very toxic" from "toxic" where the probability saturates).
        score: ``"response"`` or ``"prompt_and_response"`` (``prompt + " " + response``).
        eps: clipping of ``p`` for the logit.
    """

    def __init__(self, output: str = "one_minus_prob", *, score: Score = "response", eps: float = 1e-6) -> None:
        self.output = _check_choice(output, "output", OUTPUTS["profanity"])
        self.score = _check_choice(score, "score", ("response", "prompt_and_response"))
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 0.5:
            raise LLMCycleError(f"eps: expected a number in (0, 0.5), got {eps!r}")
        self.eps = float(eps)
        self._scorer = ProfanityCheckScorer()
        self.name = f"profanity-check:{self.output}"

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        p, r = check_batch(prompts, responses)
        probs = self._scorer(join_prompt_response(p, r, self.score))
        if self.output == "one_minus_prob":
            return [1.0 - q for q in probs]
        clipped = [min(max(q, self.eps), 1.0 - self.eps) for q in probs]
        return [math.log((1.0 - q) / q) for q in clipped]


class TrainedRewardModel:
    """A scalar-head reward model: the single logit of a ``num_labels=1`` sequence classifier.

    Loads directories written by ``llmcycle.alignment.reward_model.train_reward_model`` (their
    ``reward_model.json`` gives the defaults for ``score`` and ``max_length``, so the model reads
    inputs as it was trained), or any one-output classifier (hub id, directory, ``LoadedModel``,
    ``(model, tokenizer)``).

    Args:
        model_or_path: directory, hub id, ``LoadedModel``, ``(model, tokenizer)`` pair, or a model.
        tokenizer: the model's tokenizer when ``model_or_path`` is a model object.
        score: ``"response"`` encodes the response alone; ``"prompt_and_response"`` encodes
            (prompt, response) as a text pair (``[CLS] prompt [SEP] response [SEP]`` for BERT).
            None: as saved in ``reward_model.json``, else ``"response"``.
        batch_size: texts per forward pass.
        max_length: truncation length; None: as saved, else the model's own limit.
        device: move the model there (``cpu``, ``cuda``, ``auto``); None leaves it where it is.
    """

    def __init__(self, model_or_path: Any, *, tokenizer: Any = None, score: Score | None = None,
                 batch_size: int = 32, max_length: int | None = None, device: str | None = None) -> None:
        saved = self._saved_settings(model_or_path)
        if isinstance(model_or_path, Path):
            model_or_path = str(model_or_path)
        self.model, self.tokenizer, source = _resolve_model(model_or_path, tokenizer)
        n_out = int(getattr(self.model.config, "num_labels", 0))
        if n_out != 1:
            raise LLMCycleError(f"model: {source} has {n_out} outputs; a reward model has exactly one "
                                "(train one with llmcycle.alignment.reward_model.train_reward_model, or use "
                                "source 'classifier' with a label name)")
        self.score = _check_choice(score or saved.get("score", "response"), "score",
                                   ("response", "prompt_and_response"))
        self.batch_size = check_positive_int(batch_size, "batch_size")
        max_length = max_length or saved.get("max_length")
        self.max_length = _max_length(self.model, self.tokenizer) if max_length is None else \
            check_positive_int(max_length, "max_length")
        _move(self.model, device)
        self.name = f"reward-model:{source}"

    @staticmethod
    def _saved_settings(model_or_path: Any) -> dict[str, Any]:
        """``score`` and ``max_length`` from ``reward_model.json`` when ``model_or_path`` is such a directory."""
        import json

        if not isinstance(model_or_path, (str, Path)) or not (Path(model_or_path) / RESULT_FILE).is_file():
            return {}
        path = Path(model_or_path) / RESULT_FILE
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            return {k: meta["config"][k] for k in ("score", "max_length")}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LLMCycleError(f"{path}: cannot read the reward model's settings ({exc})") from None

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        p, r = check_batch(prompts, responses)
        first, second = (r, None) if self.score == "response" else (p, r)
        logits = _forward_batches(self.model, self.tokenizer, first, second, self.batch_size,
                                  self.max_length)  # (N, 1)
        return [float(x) for x in logits[:, 0]]


class CallableReward:
    """Any Python function ``f(prompts, responses) -> sequence of floats``, checked on every call.

    Args:
        fn: the function; it must return one finite number per response.
        name: a name for logs and errors; default the function's qualified name.
    """

    def __init__(self, fn: Callable[[list[str], list[str]], Sequence[float]], name: str | None = None) -> None:
        if not callable(fn):
            raise LLMCycleError(f"fn: expected a callable f(prompts, responses) -> floats, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        p, r = check_batch(prompts, responses)
        return check_rewards(self.fn(p, r), len(r), self.name)


class RewardNormalizer:
    """Running mean and standard deviation of every reward seen, merged batch by batch (Chan et al.).

    ``normalize(rewards)`` first adds the batch to the statistics, then returns
    ``(r - mean) / max(std, eps)``; the std is the population std (``ddof=0``) of all rewards so far.

    Args:
        eps: floor of the std, so a constant reward maps to 0 rather than dividing by zero.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = float(eps)
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean

    @property
    def std(self) -> float:
        """Population standard deviation of the rewards seen so far (0 before any)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    def update(self, rewards: Sequence[float]) -> None:
        """Merge a batch into the running statistics (exact, order-independent up to rounding)."""
        values = check_rewards(rewards, None, "normalizer input")
        n = len(values)
        if not n:
            return
        b_mean = sum(values) / n
        b_m2 = sum((v - b_mean) ** 2 for v in values)
        total = self.count + n
        delta = b_mean - self.mean
        self.mean += delta * n / total
        self.m2 += b_m2 + delta * delta * self.count * n / total
        self.count = total

    def normalize(self, rewards: Sequence[float], update: bool = True) -> list[float]:
        """``rewards`` shifted and scaled by the running statistics (after adding them, if ``update``)."""
        values = check_rewards(rewards, None, "normalizer input")
        if update:
            self.update(values)
        scale = max(self.std, self.eps)
        return [(v - self.mean) / scale for v in values]

    def state_dict(self) -> dict[str, float | int]:
        """Everything needed to resume: ``{"count", "mean", "m2", "eps"}`` (JSON-serialisable)."""
        return {"count": self.count, "mean": self.mean, "m2": self.m2, "eps": self.eps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore statistics saved by ``state_dict``."""
        missing = [k for k in ("count", "mean", "m2", "eps") if k not in state]
        if missing:
            raise LLMCycleError(f"reward normalizer state: missing {', '.join(missing)}")
        count, m2 = state["count"], float(state["m2"])
        if isinstance(count, bool) or not isinstance(count, int) or count < 0 or m2 < 0:
            raise LLMCycleError(f"reward normalizer state: count must be an int >= 0 and m2 >= 0, got "
                                f"count={count!r}, m2={m2!r}")
        self.count, self.mean, self.m2, self.eps = count, float(state["mean"]), m2, float(state["eps"])


class NormalizedReward:
    """A reward source whose outputs pass through a ``RewardNormalizer`` (exposed as ``.normalizer``)."""

    def __init__(self, source: RewardSource, normalizer: RewardNormalizer | None = None) -> None:
        self.source = source
        self.normalizer = normalizer or RewardNormalizer()
        self.name = f"{source.name}:normalized"

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self.normalizer.normalize(self.source(prompts, responses))


class RewardConfig(StageConfig):
    """Which reward source to use and how; ``make_reward`` builds it."""

    source: Literal["classifier", "profanity", "reward_model", "callable"] = Field(
        "profanity", description="classifier (a Hugging Face sequence classifier, one label by name), profanity "
        "(the offline alt-profanity-check classifier), reward_model (a scalar-head model, e.g. from "
        "train_reward_model) or callable (a Python function).")
    model: str | None = Field(
        None, min_length=1, description="Hub id or local directory of the classifier or reward model "
        "(e.g. facebook/roberta-hate-speech-dynabench-r4-target); needed by classifier and reward_model.")
    label: str | None = Field(
        None, min_length=1, description="Name of the rewarded class in the classifier's id2label (e.g. nothate); "
        "needed by classifier. Matched by name, never by position.")
    output: Literal["logit", "probability", "one_minus_prob"] | None = Field(
        None, description="classifier: logit (default) or probability (softmax) of the label; profanity: "
        "one_minus_prob (default, 1 - P(toxic)) or logit (log((1-p)/p), p clipped).")
    score: Score | None = Field(
        None, description="What is scored: response (default) or prompt_and_response. For reward_model the "
        "default is the setting it was trained with.")
    callable: str | None = Field(
        None, description="'module:function' import path of f(prompts, responses) -> floats; needed by callable.")
    normalize: bool = Field(False, description="Normalise rewards by their running mean and std (over all batches "
                            "so far).")
    batch_size: int = Field(32, gt=0, description="Texts per forward pass of a classifier or reward model.")
    max_length: int | None = Field(None, gt=0, description="Truncation length in tokens; default the model's own "
                                   "limit (for reward_model: the length it was trained with).")
    device: Device | None = Field(None, description="Where to run a classifier or reward model (cpu, cuda, auto); "
                                  "None: where it is loaded (cpu).")

    @field_validator("callable")
    @classmethod
    def _import_path(cls, value: str | None) -> str | None:
        if value is not None:
            module, _, attr = value.partition(":")
            if not module.strip() or not attr.strip():
                raise ValueError(f"expected 'module:function' (e.g. mypkg.rewards:score), got {value!r}")
        return value


class _RewardSection(StageConfig):
    """Wraps a bare reward config so validation errors say ``reward.<field>``, as in a recipe."""

    reward: RewardConfig


def load_callable(path: str, field: str = "reward.callable") -> Callable[..., Any]:
    """Import ``module:function`` (``function`` may be dotted, ``Class.method``); errors name ``field``."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{field}: expected 'module:function', got {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{field}: cannot import module {module_name!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{field}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"{field}: {path} is a {type(obj).__name__}, not a callable")
    return obj


def _require(cfg: RewardConfig, field: str, where: str, what: str) -> Any:
    value = getattr(cfg, field)
    if value is None:
        raise ConfigError(f"{where}.{field}: source {cfg.source!r} needs {what}")
    return value


def _check_output(cfg: RewardConfig, where: str) -> str | None:
    valid = OUTPUTS.get(cfg.source, ())
    if cfg.output is not None and cfg.output not in valid:
        allowed = f"valid: {', '.join(valid)}" if valid else "leave it unset"
        raise ConfigError(f"{where}.output: {cfg.output!r} does not apply to source {cfg.source!r}; {allowed}")
    return cfg.output or DEFAULT_OUTPUT.get(cfg.source)


def make_reward(cfg: RewardConfig | Mapping[str, Any] | None, where: str = "reward") -> RewardSource:
    """Build the reward source ``cfg`` describes (wrapped in ``NormalizedReward`` when ``normalize``).

    Args:
        cfg: a ``RewardConfig`` or a mapping of its fields (None: the defaults, profanity).
        where: the config path of this section, used in error messages (``reward.model: ...``).

    Raises:
        ConfigError: a missing or inapplicable field, an unimportable callable, an unknown label.
    """
    if not isinstance(cfg, RewardConfig):
        if cfg is not None and not isinstance(cfg, Mapping):
            raise ConfigError(f"{where}: expected a mapping of reward fields, got {type(cfg).__name__}")
        try:
            cfg = _RewardSection.from_dict({"reward": dict(cfg or {})}).reward
        except ConfigError as exc:
            parts = str(exc).split("; ")  # one "reward.<field>: message" per problem
            raise ConfigError("; ".join(where + p.removeprefix("reward") if p.startswith("reward.") else p
                                        for p in parts)) from None
    output = _check_output(cfg, where)
    score = cfg.score or "response"
    try:
        if cfg.source == "classifier":
            model = _require(cfg, "model", where, "a model (hub id or directory of a sequence classifier)")
            label = _require(cfg, "label", where, "a label name (e.g. nothate)")
            reward: RewardSource = ClassifierReward(model, label, output=output, score=score,
                                                    batch_size=cfg.batch_size, max_length=cfg.max_length,
                                                    device=cfg.device)
        elif cfg.source == "profanity":
            reward = ProfanityReward(output, score=score)
        elif cfg.source == "reward_model":
            model = _require(cfg, "model", where, "a model (directory from train_reward_model, or hub id)")
            reward = TrainedRewardModel(model, score=cfg.score, batch_size=cfg.batch_size,
                                        max_length=cfg.max_length, device=cfg.device)
        else:
            path = _require(cfg, "callable", where, "an import path 'module:function'")
            reward = CallableReward(load_callable(path, f"{where}.callable"), name=path)
    except ConfigError:
        raise
    except LLMCycleError as exc:  # from the model or label: prefix with this section
        msg = str(exc)
        field = msg.split(":", 1)[0] if msg.split(":", 1)[0] in RewardConfig.model_fields else None
        raise ConfigError(f"{where}.{msg}" if field else f"{where}.model: {msg}") from None
    return NormalizedReward(reward) if cfg.normalize else reward
