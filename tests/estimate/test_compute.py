"""Compute: 6ND, PF/s-days, Chinchilla, the budget planner and wall-clock time."""

from __future__ import annotations

import math

import pytest

from llmcycle.core.errors import LLMCycleError
from llmcycle.estimate import (
    PF_DAY_FLOPS,
    chinchilla_tokens,
    flops_to_pf_days,
    inference_flops,
    pf_days_to_flops,
    plan_budget,
    plan_training,
    training_flops,
    training_seconds,
)


def test_six_n_d_and_two_n_per_token():
    assert training_flops(1e9, 20e9) == 6 * 1e9 * 20e9
    assert inference_flops(7e9) == 14e9
    assert inference_flops(7e9, 100) == 2 * 7e9 * 100


def test_petaflop_days():
    assert PF_DAY_FLOPS == 1e15 * 86400
    assert flops_to_pf_days(8.64e19) == pytest.approx(1.0)
    assert pf_days_to_flops(2.5) == pytest.approx(2.5 * 8.64e19)


def test_chinchilla_70b_wants_1_4_trillion_tokens():
    assert chinchilla_tokens(70e9) == pytest.approx(1.4e12)
    plan = plan_training(70e9)
    assert plan.n_tokens == pytest.approx(1.4e12) and plan.tokens_per_param == pytest.approx(20)
    assert plan.flops == pytest.approx(6 * 70e9 * 1.4e12)


@pytest.mark.parametrize("budget", [1e21, 5.88e23, 3.14e23])
def test_budget_planner_round_trip(budget):
    plan = plan_budget(budget)
    assert plan.n_params == pytest.approx(math.sqrt(budget / 120))
    assert plan.n_tokens == pytest.approx(20 * plan.n_params)
    assert training_flops(plan.n_params, plan.n_tokens) == pytest.approx(budget)
    again = plan_training(plan.n_params, plan.n_tokens)
    assert again.flops == pytest.approx(budget) and again.pf_days == pytest.approx(plan.pf_days)


def test_budget_in_pf_days_and_time_on_hardware():
    plan = plan_budget(pf_days=1000, n_gpus=64, peak_tflops=312, mfu=0.5)
    assert plan.flops == pytest.approx(1000 * PF_DAY_FLOPS)
    assert plan.seconds == pytest.approx(plan.flops / (64 * 312e12 * 0.5))
    assert plan.days == pytest.approx(plan.seconds / 86400)
    assert any(label.startswith("time on 64 x 312") for label, _ in plan.rows())
    assert plan_training(1e9).seconds is None


@pytest.mark.parametrize("call, argument", [
    (lambda: training_flops(-1, 10), "n_params"),
    (lambda: training_flops(1e9, 0), "n_tokens"),
    (lambda: plan_training(1e9, n_gpus=0, peak_tflops=100), "n_gpus"),
    (lambda: training_seconds(1e20, 1, 100, mfu=1.5), "mfu"),
    (lambda: training_seconds(1e20, 1, -3), "peak_tflops"),
    (lambda: plan_budget(), "flops"),
    (lambda: plan_budget(1e20, pf_days=3), "flops"),
    (lambda: plan_budget(pf_days=-2), "pf_days"),
    (lambda: chinchilla_tokens(float("nan")), "n_params"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(LLMCycleError, match=rf"^{argument}:"):
        call()
