"""Bootstrap confidence intervals and paired tests on synthetic data whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation import (
    approximate_randomization_test,
    bootstrap_ci,
    paired_bootstrap_test,
    paired_test,
)

METHODS = ["bootstrap", "randomization"]


def scores(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 0.6, size=n)


def test_ci_contains_the_mean_and_is_seeded() -> None:
    x = scores(100)
    ci = bootstrap_ci(x, seed=1)
    assert ci.low < ci.mean < ci.high and ci.mean == pytest.approx(x.mean())
    assert (ci.confidence, ci.n) == (0.95, 100)
    assert bootstrap_ci(x, seed=1) == ci
    assert bootstrap_ci(x, seed=2) != ci


def test_ci_narrows_with_more_data_and_widens_with_confidence() -> None:
    small, large = bootstrap_ci(scores(50)), bootstrap_ci(scores(5000))
    assert large.high - large.low < (small.high - small.low) / 5  # ~1/sqrt(100) of the width
    wide = bootstrap_ci(scores(50), confidence=0.99)
    assert wide.high - wide.low > small.high - small.low


def test_ci_width_matches_the_normal_approximation() -> None:
    x = scores(2000, seed=5)
    ci = bootstrap_ci(x, n_resamples=4000, seed=0)
    half = 1.96 * x.std() / np.sqrt(len(x))
    assert (ci.high - ci.low) / 2 == pytest.approx(half, rel=0.1)


def test_ci_of_a_constant_is_a_point() -> None:
    ci = bootstrap_ci([0.3] * 20)
    assert ci.low == pytest.approx(0.3) and ci.high == pytest.approx(0.3)


@pytest.mark.parametrize("method", METHODS)
def test_identical_systems_give_p_one(method: str) -> None:
    x = scores(200)
    result = paired_test(x, x.copy(), method=method)
    assert result.p_value == pytest.approx(1.0) and result.delta == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_system_better_on_every_example_gives_small_p(method: str) -> None:
    b = scores(60)
    a = b + np.random.default_rng(1).uniform(0.01, 0.05, size=60)
    result = paired_test(a, b, method=method, n_resamples=2000)
    assert result.p_value < 0.01
    assert result.delta > 0 and result.mean_a > result.mean_b
    assert paired_test(b, a, method=method, n_resamples=2000).p_value < 0.01  # two-sided


@pytest.mark.parametrize("method", METHODS)
def test_noise_only_difference_is_not_significant(method: str) -> None:
    rng = np.random.default_rng(7)
    base = scores(300)
    a, b = base + rng.normal(0, 0.05, 300), base + rng.normal(0, 0.05, 300)
    assert paired_test(a, b, method=method).p_value > 0.05


def test_named_wrappers_and_seeding() -> None:
    a, b = scores(80, 1), scores(80, 2)
    assert paired_bootstrap_test(a, b, seed=4) == paired_test(a, b, method="bootstrap", seed=4)
    assert approximate_randomization_test(a, b, seed=4) == paired_test(a, b, method="randomization", seed=4)
    assert paired_bootstrap_test(a, b, seed=4).method == "bootstrap"


def test_p_value_floor_is_one_over_resamples_plus_one() -> None:
    a, b = [1.0] * 30, [0.0] * 30
    assert paired_test(a, b, n_resamples=99).p_value == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: bootstrap_ci([]), "values: is empty"),
        (lambda: bootstrap_ci([0.1, float("nan")]), r"values\[1\]: expected a finite number"),
        (lambda: bootstrap_ci([0.1, "x"]), r"values\[1\]"),
        (lambda: bootstrap_ci([0.1], confidence=95), "confidence: expected a number strictly between 0 and 1"),
        (lambda: bootstrap_ci([0.1], n_resamples=0), "n_resamples: expected an integer >= 1"),
        (lambda: paired_test([0.1, 0.2], [0.1]), "a has 2 scores but b has 1"),
        (lambda: paired_test([0.1], [0.1], method="t-test"), "method: unknown value 't-test'"),
        (lambda: paired_test("abc", [0.1]), "a: expected a list of numbers"),
    ],
)
def test_bad_input_names_the_argument(call, match: str) -> None:
    with pytest.raises(LLMCycleError, match=match):
        call()
