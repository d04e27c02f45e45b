"""ROUGE through Google's ``rouge-score`` package (never re-implemented here).

``rouge(predictions, references)`` returns ``{"rouge1", "rouge2", "rougeL", "rougeLsum"}`` mapped to
aggregate F-measures in [0, 1]. Choices, stated once:

* **Aggregate** (``aggregate="mean"``, the default): the plain mean of per-example F1, exactly
  what ``RougeScorer`` gives example by example. ``aggregate="bootstrap"`` returns instead the
  ``mid`` (median of 1000 bootstrap means) of rouge-score's ``BootstrapAggregator``, which is what
  the Hugging Face ``evaluate`` wrapper reports; it differs from the mean in the 4th decimal.
  It is seeded here (``seed``) so that two calls agree.
* **Several references** per example (``multi_ref``): ``"max"`` takes, per metric, the reference
  with the best F1 and reports its precision/recall/F1 (rouge-score's ``score_multi``, also the
  ``evaluate`` convention); ``"mean"`` averages precision, recall and F1 over the references.
* **rougeLsum** is summary-level LCS over sentences, and rouge-score finds sentences by
  newlines. ``sentence_split="none"`` (default) passes texts as they are, as the ``evaluate``
  wrapper does (it splits nothing itself). ``"nltk"`` puts each ``nltk.sent_tokenize`` sentence
  on its own line first, what the Hugging Face summarisation examples do before calling
  ``evaluate`` (and rouge-score's ``split_summaries=True``); it needs NLTK's ``punkt_tab`` data.
  ``"simple"`` is an offline approximation: a break after ``.``, ``!`` or ``?`` followed by
  whitespace. Splitting changes rougeLsum only; ROUGE-1/2/L tokenise newlines as spaces.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal, NamedTuple, Sequence

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation._checks import check_choice, check_positive_int, check_references, check_texts

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")
MultiRef = Literal["max", "mean"]
Aggregate = Literal["mean", "bootstrap"]
SentenceSplit = Literal["none", "nltk", "simple"]
_VALID_TYPE = re.compile(r"^(rouge[1-9]|rougeL|rougeLsum)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


class Score(NamedTuple):
    """Precision, recall and F-measure of one ROUGE type for one example (fields as rouge-score's)."""

    precision: float
    recall: float
    fmeasure: float


@lru_cache(maxsize=8)
def _scorer(rouge_types: tuple[str, ...], use_stemmer: bool) -> Any:
    from rouge_score import rouge_scorer  # imports nltk (and with it scipy/sklearn): kept lazy

    return rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)


def split_sentences(text: str, method: SentenceSplit = "simple") -> str:
    """``text`` with one sentence per line (the form rougeLsum expects); ``"none"`` returns it as is."""
    check_choice(method, "sentence_split", ("none", "nltk", "simple"))
    if method == "none":
        return text
    if method == "simple":
        return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)
    import nltk

    try:
        return "\n".join(nltk.sent_tokenize(text))
    except LookupError:
        raise LLMCycleError(
            "sentence_split='nltk' needs NLTK's punkt_tab data (python -m nltk.downloader punkt_tab); "
            "offline, use sentence_split='simple' or 'none'"
        ) from None


def _check_types(rouge_types: Sequence[str]) -> tuple[str, ...]:
    if isinstance(rouge_types, str) or not rouge_types:
        raise LLMCycleError(f"rouge_types: expected a non-empty list such as {list(ROUGE_TYPES)}, got {rouge_types!r}")
    for t in rouge_types:
        if not isinstance(t, str) or not _VALID_TYPE.match(t):
            raise LLMCycleError(f"rouge_types: unknown type {t!r}; valid: rouge1..rouge9, rougeL, rougeLsum")
    return tuple(rouge_types)


def _example_scores(scorer: Any, refs: list[str], pred: str, multi_ref: str) -> dict[str, Score]:
    if multi_ref == "max" or len(refs) == 1:
        best = scorer.score_multi(refs, pred)  # per type: the reference with the highest F1
        return {k: Score(*v) for k, v in best.items()}
    per_ref = [scorer.score(r, pred) for r in refs]
    return {k: Score(*(sum(s[k][i] for s in per_ref) / len(per_ref) for i in range(3))) for k in per_ref[0]}


def rouge_per_example(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    use_stemmer: bool = True,
    rouge_types: Sequence[str] = ROUGE_TYPES,
    multi_ref: MultiRef = "max",
    sentence_split: SentenceSplit = "none",
) -> list[dict[str, Score]]:
    """Per-example ROUGE: one ``{rouge_type: Score(precision, recall, fmeasure)}`` per prediction.

    ``references`` holds one string or one list of strings per prediction. See the module
    docstring for ``multi_ref`` and ``sentence_split``.
    """
    preds = check_texts(predictions, "predictions")
    refs = check_references(references, len(preds), "references")
    types = _check_types(rouge_types)
    check_choice(multi_ref, "multi_ref", ("max", "mean"))
    check_choice(sentence_split, "sentence_split", ("none", "nltk", "simple"))
    if not isinstance(use_stemmer, bool):
        raise LLMCycleError(f"use_stemmer: expected True or False, got {use_stemmer!r}")
    if sentence_split != "none":
        preds = [split_sentences(p, sentence_split) for p in preds]
        refs = [[split_sentences(r, sentence_split) for r in rs] for rs in refs]
    scorer = _scorer(types, use_stemmer)
    return [_example_scores(scorer, rs, p, multi_ref) for p, rs in zip(preds, refs)]


def _bootstrap_mid(per_example: list[dict[str, Score]], n_resamples: int, seed: int) -> dict[str, float]:
    """rouge-score's ``BootstrapAggregator`` mid F-measure, with numpy's global RNG seeded and restored."""
    import numpy as np
    from rouge_score import scoring

    aggregator = scoring.BootstrapAggregator(confidence_interval=0.95, n_samples=n_resamples)
    for scores in per_example:
        aggregator.add_scores({k: scoring.Score(*v) for k, v in scores.items()})
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        result = aggregator.aggregate()
    finally:
        np.random.set_state(state)
    return {k: float(v.mid.fmeasure) for k, v in result.items()}


def rouge(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    use_stemmer: bool = True,
    *,
    rouge_types: Sequence[str] = ROUGE_TYPES,
    multi_ref: MultiRef = "max",
    aggregate: Aggregate = "mean",
    sentence_split: SentenceSplit = "none",
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Aggregate ROUGE F-measures in [0, 1]: ``{"rouge1", "rouge2", "rougeL", "rougeLsum"}``.

    Args:
        predictions: one generated text per example.
        references: per example, one reference string or a list of them.
        use_stemmer: Porter stemming before matching (rouge-score's option; on by default here,
            as in the DialogSum and course numbers).
        rouge_types: which ROUGE types to compute (keys of the result, in this order).
        multi_ref: ``"max"`` (best reference per metric, rouge-score's ``score_multi``) or ``"mean"``.
        aggregate: ``"mean"`` of per-example F1, or ``"bootstrap"`` (rouge-score's
            BootstrapAggregator mid, the ``evaluate`` figure).
        sentence_split: ``"none"``, ``"nltk"`` or ``"simple"``: how rougeLsum finds sentences.
        n_resamples: bootstrap resamples (``aggregate="bootstrap"`` only).
        seed: bootstrap seed (``aggregate="bootstrap"`` only).
    """
    check_choice(aggregate, "aggregate", ("mean", "bootstrap"))
    check_positive_int(n_resamples, "n_resamples")
    per_example = rouge_per_example(predictions, references, use_stemmer=use_stemmer, rouge_types=rouge_types,
                                    multi_ref=multi_ref, sentence_split=sentence_split)
    if aggregate == "bootstrap":
        return _bootstrap_mid(per_example, n_resamples, seed)
    n = len(per_example)
    return {k: sum(s[k].fmeasure for s in per_example) / n for k in _check_types(rouge_types)}
