"""Scores for applications: retrieval (hit@k, MRR, nDCG@k) and answers (normalised exact match, containment).

Retrieval metrics take, per query, the ranked document ids and the set of relevant ids (binary relevance):

* ``hit@k``: 1 when a relevant document is among the first k;
* ``MRR``: 1 / rank of the first relevant document (0 when none was retrieved);
* ``nDCG@k``: DCG of the first k (gain 1 / log2(rank + 1) per relevant document) over the best possible DCG.

Answers are compared after SQuAD's normalisation (lower case, no punctuation, no articles, single spaces);
numbers are compared as numbers (``1,200`` = ``1200.0`` = ``$1200``).
"""

from __future__ import annotations

import math
import re
import string
from typing import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")  # 1,200.5 or 1200.5; not 1,2


def hit_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    return float(any(d in rel for d in ranked[:k]))


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    rel = set(relevant)
    for i, d in enumerate(ranked, start=1):
        if d in rel:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    rel = set(relevant)
    dcg = sum(1.0 / math.log2(i + 1) for i, d in enumerate(ranked[:k], start=1) if d in rel)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(rel), k) + 1))
    return dcg / ideal if ideal else 0.0


def retrieval_scores(rankings: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]],
                     ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """Means over queries: ``hit@k`` and ``ndcg@k`` for each k, and ``mrr``."""
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings for {len(relevant)} relevance sets")
    n = len(rankings) or 1
    rel = [set(r) for r in relevant]
    out: dict[str, float] = {}
    for k in ks:
        out[f"hit@{k}"] = sum(hit_at_k(r, s, k) for r, s in zip(rankings, rel)) / n
    out["mrr"] = sum(reciprocal_rank(r, s) for r, s in zip(rankings, rel)) / n
    for k in ks:
        out[f"ndcg@{k}"] = sum(ndcg_at_k(r, s, k) for r, s in zip(rankings, rel)) / n
    return out


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, punctuation and articles removed, whitespace collapsed."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def as_number(text: str) -> float | None:
    """The number ``text`` is (``$1,200.50`` -> 1200.5), or None when it is not just a number."""
    t = text.strip().rstrip(".").replace(" ", "")
    if not _NUMBER.fullmatch(t):
        return None
    try:
        return float(t.replace("$", "").replace(",", ""))
    except ValueError:
        return None


def canonical(answer: str | None) -> str | None:
    """The form answers are voted and compared in: a number as its shortest exact text, else normalised text."""
    if answer is None:
        return None
    number = as_number(answer)
    if number is not None:
        return str(int(number)) if number == int(number) else f"{number:.6g}"
    text = normalize_answer(answer)
    return text or None


def exact_match(prediction: str | None, gold: str) -> bool:
    """Whether ``prediction`` equals ``gold`` after ``canonical`` (numbers as numbers)."""
    p, g = canonical(prediction), canonical(gold)
    return p is not None and p == g


def contains_answer(text: str, answer: str) -> bool:
    """Whether ``text`` contains ``answer`` after normalisation (the cited passage holds the answer)."""
    a = normalize_answer(answer)
    return bool(a) and f" {a} " in f" {normalize_answer(text)} "
