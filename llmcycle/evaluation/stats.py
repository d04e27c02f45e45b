"""How sure is a metric? Bootstrap confidence intervals and paired tests between two systems.

Inputs are per-example scores (e.g. ROUGE-1 F1 of each test dialogue from
``rouge_per_example``). Everything is seeded: the same call gives the same answer.

* ``bootstrap_ci``: percentile bootstrap interval of the mean (Efron & Tibshirani, 1993).
* ``paired_test(a, b, method="bootstrap")``: paired bootstrap (Koehn, 2004; Berg-Kirkpatrick et
  al., 2012): resample examples, recentre the resampled mean differences on zero (the null) and
  count how often they are at least as far from zero as the observed difference (two-sided).
* ``paired_test(a, b, method="randomization")``: approximate randomization (Noreen, 1989; Riezler
  & Maxwell, 2005): swap the two systems' scores on each example with probability 1/2, same count.

p-values carry the +1 correction ((hits + 1) / (n_resamples + 1)), so they are never 0 and a
p-value below 1 / (n_resamples + 1) cannot be claimed with too few resamples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation._checks import check_choice, check_positive_int

_CHUNK = 2_000_000  # resample indices drawn per chunk: bounds memory at ~16 MB whatever the data size


@dataclass(frozen=True)
class ConfidenceInterval:
    """Mean of the values and its bootstrap interval at ``confidence``."""

    mean: float
    low: float
    high: float
    confidence: float
    n: int


@dataclass(frozen=True)
class PairedTestResult:
    """Mean score of each system, their difference (a - b) and the two-sided p-value of no difference."""

    mean_a: float
    mean_b: float
    delta: float
    p_value: float
    method: str
    n_resamples: int


def _values(values: Any, name: str) -> np.ndarray:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise LLMCycleError(f"{name}: expected a list of numbers (one per example), got {type(values).__name__}")
    items = list(values)
    if not items:
        raise LLMCycleError(f"{name}: is empty; pass one score per example")
    for i, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise LLMCycleError(f"{name}[{i}]: expected a finite number, got {v!r}")
    return np.asarray(items, dtype=np.float64)


def _resampled_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of ``values``, drawn in bounded chunks."""
    n = len(values)
    per_chunk = max(1, _CHUNK // n)
    out = []
    for start in range(0, n_resamples, per_chunk):
        idx = rng.integers(0, n, size=(min(per_chunk, n_resamples - start), n))  # (R_chunk, n)
        out.append(values[idx].mean(axis=1))
    return np.concatenate(out)


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> ConfidenceInterval:
    """Percentile bootstrap confidence interval of the mean of ``values`` (per-example scores)."""
    x = _values(values, "values")
    check_positive_int(n_resamples, "n_resamples")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise LLMCycleError(f"confidence: expected a number strictly between 0 and 1, got {confidence!r}")
    means = _resampled_means(x, n_resamples, np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return ConfidenceInterval(float(x.mean()), float(low), float(high), float(confidence), len(x))


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xa, xb = _values(a, "a"), _values(b, "b")
    if len(xa) != len(xb):
        raise LLMCycleError(f"a has {len(xa)} scores but b has {len(xb)}; a paired test needs the same examples")
    return xa, xb


def _bootstrap_p(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    observed = d.mean()
    centred = _resampled_means(d, n_resamples, rng) - observed  # the null: no difference on average
    hits = int(np.sum(np.abs(centred) >= abs(observed) - 1e-12))
    return (hits + 1) / (n_resamples + 1)


def _randomization_p(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    observed = abs(d.mean())
    per_chunk = max(1, _CHUNK // len(d))
    hits = 0
    for start in range(0, n_resamples, per_chunk):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(per_chunk, n_resamples - start), len(d)))  # (R, n)
        hits += int(np.sum(np.abs((signs * d).mean(axis=1)) >= observed - 1e-12))
    return (hits + 1) / (n_resamples + 1)


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    method: Literal["bootstrap", "randomization"] = "bootstrap",
    n_resamples: int = 1000,
    seed: int = 0,
) -> PairedTestResult:
    """Two-sided test that systems ``a`` and ``b`` (scores on the same examples, same order) are equal.

    A small p-value means the difference in mean score (``delta = mean(a) - mean(b)``) is unlikely
    to come from which examples happened to be in the test set. Identical systems give p = 1.
    """
    xa, xb = _paired(a, b)
    check_choice(method, "method", ("bootstrap", "randomization"))
    check_positive_int(n_resamples, "n_resamples")
    d = xa - xb  # (n,) per-example difference
    rng = np.random.default_rng(seed)
    p = _bootstrap_p(d, n_resamples, rng) if method == "bootstrap" else _randomization_p(d, n_resamples, rng)
    return PairedTestResult(float(xa.mean()), float(xb.mean()), float(d.mean()), float(p), method, n_resamples)


def paired_bootstrap_test(a: Sequence[float], b: Sequence[float], *, n_resamples: int = 1000,
                          seed: int = 0) -> PairedTestResult:
    """``paired_test(a, b, method="bootstrap")``."""
    return paired_test(a, b, method="bootstrap", n_resamples=n_resamples, seed=seed)


def approximate_randomization_test(a: Sequence[float], b: Sequence[float], *, n_resamples: int = 1000,
                                   seed: int = 0) -> PairedTestResult:
    """``paired_test(a, b, method="randomization")``."""
    return paired_test(a, b, method="randomization", n_resamples=n_resamples, seed=seed)
