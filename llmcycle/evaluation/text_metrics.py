"""Text metrics besides ROUGE: BLEU and chrF (sacrebleu), diversity, lengths, label accuracy and F1.

Scales: BLEU, self-BLEU and chrF are on sacrebleu's 0-100 scale (as papers report them);
distinct-n, accuracy and macro-F1 are in [0, 1].

Several references per example are passed to sacrebleu the way it expects them: transposed into
reference *streams* (stream k holds the k-th reference of every example), with ``None`` padding
where an example has fewer references than the most any example has (sacrebleu skips ``None``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Hashable, Literal, Sequence

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation._checks import check_choice, check_positive_int, check_references, check_texts


def reference_streams(
    references: Sequence[str] | Sequence[Sequence[str]], n: int | None = None
) -> list[list[str | None]]:
    """Per-example references transposed into sacrebleu's streams, padded with ``None``.

    ``[["a1", "a2"], ["b1"]]`` becomes ``[["a1", "b1"], ["a2", None]]``.
    """
    if n is None and not isinstance(references, (str, bytes)) and hasattr(references, "__iter__"):
        references = list(references)
        n = len(references)
    refs = check_references(references, n or 0, "references")
    depth = max(len(r) for r in refs) if refs else 0
    return [[r[k] if k < len(r) else None for r in refs] for k in range(depth)]


def bleu(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
    smooth_method: str = "exp",
) -> dict[str, Any]:
    """Corpus BLEU (0-100) with sacrebleu: ``{"bleu", "precisions", "bp", "sys_len", "ref_len", "signature"}``.

    ``tokenize`` and ``smooth_method`` take sacrebleu's names ("13a", "intl", "char", ... and
    "exp", "floor", "add-k", "none").
    """
    from sacrebleu.metrics import BLEU

    preds = check_texts(predictions, "predictions")
    streams = reference_streams(references, len(preds))
    check_choice(tokenize, "tokenize", tuple(BLEU.TOKENIZERS))
    check_choice(smooth_method, "smooth_method", tuple(BLEU.SMOOTH_DEFAULTS))
    metric = BLEU(tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method)
    score = metric.corpus_score(preds, streams)
    return {"bleu": float(score.score), "precisions": [float(p) for p in score.precisions], "bp": float(score.bp),
            "sys_len": int(score.sys_len), "ref_len": int(score.ref_len), "signature": str(metric.get_signature())}


def chrf(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    word_order: int = 0,
    char_order: int = 6,
    beta: int = 2,
    lowercase: bool = False,
) -> dict[str, Any]:
    """Corpus chrF (0-100) with sacrebleu; ``word_order=2`` gives chrF++. Returns ``{"chrf", "signature"}``."""
    from sacrebleu.metrics import CHRF

    preds = check_texts(predictions, "predictions")
    streams = reference_streams(references, len(preds))
    check_positive_int(word_order, "word_order", minimum=0)
    check_positive_int(char_order, "char_order")
    check_positive_int(beta, "beta", minimum=0)
    metric = CHRF(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase)
    score = metric.corpus_score(preds, streams)
    return {"chrf": float(score.score), "signature": str(metric.get_signature())}


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int = 1, *, lowercase: bool = True) -> float:
    """Distinct-n (Li et al., 2016): unique n-grams / all n-grams over all texts, whitespace tokens.

    0.0 when the texts hold no n-gram at all. Higher means more diverse samples.
    """
    items = check_texts(texts, "texts")
    check_positive_int(n, "n")
    grams: list[tuple[str, ...]] = []
    for t in items:
        grams.extend(_ngrams((t.lower() if lowercase else t).split(), n))
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct(texts: Sequence[str], ns: Sequence[int] = (1, 2), *, lowercase: bool = True) -> dict[str, float]:
    """``{"distinct-1": ..., "distinct-2": ...}`` for each n in ``ns``."""
    return {f"distinct-{n}": distinct_n(texts, n, lowercase=lowercase) for n in ns}


def self_bleu(texts: Sequence[str], *, tokenize: str = "13a") -> float:
    """Self-BLEU (Zhu et al., 2018), 0-100: mean sentence BLEU of each text against all the others.

    Lower means more diverse samples. Sentence BLEU is sacrebleu's (exponential smoothing,
    effective order), so short texts do not collapse to 0. Cost grows with the square of the count.
    """
    from sacrebleu.metrics import BLEU

    items = check_texts(texts, "texts")
    if len(items) < 2:
        raise LLMCycleError(f"texts: self-BLEU needs at least 2 texts, got {len(items)}")
    check_choice(tokenize, "tokenize", tuple(BLEU.TOKENIZERS))
    metric = BLEU(tokenize=tokenize, effective_order=True)
    scores = [metric.sentence_score(t, items[:i] + items[i + 1:]).score for i, t in enumerate(items)]
    return float(sum(scores) / len(scores))


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of already sorted values."""
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def length_stats(
    texts: Sequence[str],
    *,
    unit: Literal["words", "tokens"] = "words",
    tokenizer: Any = None,
) -> dict[str, float]:
    """Length of each text in words (whitespace split) or tokens: mean, median, p95, min, max, count.

    ``unit="tokens"`` needs ``tokenizer``: a Hugging Face tokenizer (special tokens not counted)
    or any callable ``str -> list``.
    """
    items = check_texts(texts, "texts")
    check_choice(unit, "unit", ("words", "tokens"))
    count: Callable[[str], int]
    if unit == "words":
        count = lambda t: len(t.split())  # noqa: E731
    elif tokenizer is None:
        raise LLMCycleError("tokenizer: unit='tokens' needs a tokenizer (or use unit='words')")
    elif hasattr(tokenizer, "encode") and hasattr(tokenizer, "convert_ids_to_tokens"):
        count = lambda t: len(tokenizer.encode(t, add_special_tokens=False))  # noqa: E731
    elif callable(tokenizer):
        count = lambda t: len(tokenizer(t))  # noqa: E731
    else:
        raise LLMCycleError(
            f"tokenizer: expected a Hugging Face tokenizer or a callable, got {type(tokenizer).__name__}")
    lengths = sorted(float(count(t)) for t in items)
    return {"mean": sum(lengths) / len(lengths), "median": _percentile(lengths, 50), "p95": _percentile(lengths, 95),
            "min": lengths[0], "max": lengths[-1], "count": float(len(lengths))}


def _check_labels(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> tuple[list, list]:
    for name, seq in (("predictions", predictions), ("labels", labels)):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
            raise LLMCycleError(f"{name}: expected a list of labels, got {type(seq).__name__}")
    preds, gold = list(predictions), list(labels)
    if len(preds) != len(gold):
        raise LLMCycleError(f"predictions has {len(preds)} items but labels has {len(gold)}; pass one per example")
    if not preds:
        raise LLMCycleError("predictions: is empty; pass at least one label")
    for name, seq in (("predictions", preds), ("labels", gold)):
        for i, v in enumerate(seq):
            if not isinstance(v, Hashable) or v is None:
                raise LLMCycleError(f"{name}[{i}]: expected a label (str, int, bool), got {v!r}")
    return preds, gold


def accuracy(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Fraction of examples whose predicted label equals the gold label."""
    preds, gold = _check_labels(predictions, labels)
    return sum(p == g for p, g in zip(preds, gold)) / len(gold)


def macro_f1(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Unweighted mean of per-class F1 over every class seen in ``labels`` or ``predictions``.

    Matches ``sklearn.metrics.f1_score(labels, predictions, average="macro", zero_division=0)``:
    a class never predicted correctly scores 0.
    """
    preds, gold = _check_labels(predictions, labels)
    tp, fp, fn = Counter(), Counter(), Counter()
    for p, g in zip(preds, gold):
        if p == g:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    classes = set(preds) | set(gold)
    # F1 = 2TP / (2TP + FP + FN); the denominator is > 0 for every class that occurs somewhere.
    return sum(2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) for c in classes) / len(classes)
