"""Scaling laws: the fit recovers a known law, the optimum is the true minimum, and a tiny sweep runs whole."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from llmcycle.core.errors import ConfigError
from llmcycle.pretrain.scaling import Fit, ScalingConfig, fit_scaling_law, isoflop_minima, optimum_table, plan_sweep

TRUE = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}  # Chinchilla's fitted law


@pytest.fixture(autouse=True)
def few_starts(monkeypatch):
    """The fit's algorithm with fewer starting points than its grid (243 L-BFGS-B runs take half a minute here):
    the tests' laws are smooth, so a handful of starts finds the same minimum."""
    monkeypatch.setattr("llmcycle.pretrain.scaling.GRID", {"alpha": (0.2, 0.6), "beta": (0.2, 0.6), "e": (0.5,),
                                                          "a": (5.0,), "b": (5.0,)})


def law(n, d):
    return TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]


def grid_points():
    n = np.array([1e6, 3e6, 1e7, 3e7])
    c = np.array([1e15, 1e16, 1e17])
    nn, cc = np.meshgrid(n, c)
    return nn.ravel(), (cc / (6 * nn)).ravel()


def test_the_fit_recovers_a_known_law_and_predicts_a_larger_model():
    n, d = grid_points()
    fit = fit_scaling_law(n, d, law(n, d), bootstrap=20)
    assert fit.predict(1e8, 1e9) == pytest.approx(law(1e8, 1e9), rel=0.01)  # extrapolated 3x in N
    assert fit.alpha == pytest.approx(TRUE["alpha"], abs=0.05) and fit.beta == pytest.approx(TRUE["beta"], abs=0.05)
    assert fit.std is not None and set(fit.std) == set(TRUE)


def test_noisy_losses_give_a_spread_and_still_a_close_prediction():
    n, d = grid_points()
    rng = np.random.default_rng(0)
    noisy = law(n, d) * (1 + rng.normal(0, 0.01, len(n)))
    fit = fit_scaling_law(n, d, noisy, bootstrap=30)
    assert fit.predict(6e7, 3e8) == pytest.approx(law(6e7, 3e8), rel=0.05)
    assert max(fit.std.values()) > 0  # resampled runs move the parameters


def test_the_compute_optimal_allocation_is_the_minimum_along_the_budget():
    fit = Fit(**TRUE, huber=0.0)
    budget = 5.76e23  # Chinchilla's own budget
    n_star, d_star = fit.optimal(budget)
    assert 6 * n_star * d_star == pytest.approx(budget, rel=1e-9)
    ns = np.geomspace(n_star / 10, n_star * 10, 2001)
    brute = ns[np.argmin([fit.predict(n, budget / (6 * n)) for n in ns])]
    assert brute == pytest.approx(n_star, rel=0.01)
    table = optimum_table(fit, budget)
    assert table["chinchilla_tokens_per_param"] == 20 and table["tokens_per_param"] == pytest.approx(d_star / n_star)
    assert table["chinchilla_n"] == pytest.approx(math.sqrt(budget / 120))


def test_isoflop_minima_find_each_budgets_valley():
    runs = []
    for budget in (1e15, 1e16):
        for n in np.geomspace(1e5, 1e8, 7):
            runs.append({"budget": budget, "params": float(n), "loss": law(n, budget / (6 * n))})
    minima = isoflop_minima(runs)
    fit = Fit(**TRUE, huber=0.0)
    for m in minima:
        assert m["inside"] and m["n_opt"] == pytest.approx(fit.optimal(m["budget"])[0], rel=0.5)
    assert minima[1]["n_opt"] > minima[0]["n_opt"]  # a bigger budget wants a bigger model


def test_the_fit_refuses_too_few_runs():
    with pytest.raises(ConfigError, match="at least 5 runs"):
        fit_scaling_law([1, 2, 3], [1, 2, 3], [3, 2, 1])


def tiny_sweep(tokenizer: str, **extra) -> dict:
    return {"sizes": [{"layers": 1, "width": 16, "heads": 2}, {"layers": 1, "width": 24, "heads": 2},
                      {"layers": 2, "width": 32, "heads": 2}],
            "budgets": [4e8, 8e8], "heldout": {"layers": 2, "width": 48, "heads": 2}, "context": 16,
            "batch_size": 4, "eval_blocks": 8, "bootstrap": 5, "tokenizer": tokenizer, "learning_rate": 1e-2} | extra


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory):
    from llmcycle.data import load_data
    from llmcycle.pretrain.tokenizer import TokenizerTrainConfig, train_tokenizer

    texts = [r["input"] for r in load_data("builtin:dialogues")["train"]]
    folder = tmp_path_factory.mktemp("tok") / "bpe"
    train_tokenizer(texts, TokenizerTrainConfig(vocab_size=400, template="none", compare=None, heldout_fraction=0),
                    folder)
    return str(folder)


def test_a_pair_with_too_few_steps_is_refused_before_any_work(small_tokenizer, tmp_path):
    cfg = ScalingConfig.from_dict(tiny_sweep(small_tokenizer, budgets=[1e6, 8e8]))
    with pytest.raises(ConfigError, match=r"sizes\[0\] .* at budget 1e\+06 trains \d+ steps"):
        plan_sweep(cfg)
    with pytest.raises(ConfigError, match="heldout must be larger"):
        plan_sweep(ScalingConfig.from_dict(tiny_sweep(small_tokenizer, heldout={"layers": 1, "width": 16,
                                                                                   "heads": 2})))
    with pytest.raises(ConfigError, match="multiple of heads"):
        ScalingConfig.from_dict(tiny_sweep(small_tokenizer, heldout={"layers": 1, "width": 30, "heads": 4}))


@pytest.mark.slow
def test_the_scaling_command_runs_a_sweep_fits_it_and_resumes(small_tokenizer, tmp_path, monkeypatch, capsys):
    """3 sizes x 2 budgets + a held-out model through `llmcycle scaling`; run again, every sub-run is read back."""
    from tests.cli_helpers import run_cli

    sets = []
    for key, value in tiny_sweep(small_tokenizer).items():
        if key not in ("tokenizer", "context"):
            sets += ["--set", f"{key}={json.dumps(value)}"]
    args = ["scaling", "--tokenizer", small_tokenizer, "--context", "16", "--runs-dir", str(tmp_path), *sets]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err[-2000:]
    run = next(tmp_path.glob("scaling-*"))
    stage = run / "01-scaling"
    result = json.loads((stage / "scaling.json").read_text())
    assert len(result["runs"]) == 6 and set(result["fit"]) == {"E", "A", "alpha", "B", "beta"}
    for r in result["runs"]:
        assert r["flops"] == pytest.approx(6 * r["params"] * r["tokens"])
        assert r["tokens"] >= int(r["budget"] / (6 * r["params"]))  # whole steps: at least D tokens
        assert r["mfu"] > 0 and r["tokens_per_s"] > 0
    assert result["heldout"]["params"] > max(r["params"] for r in result["runs"])
    assert result["heldout"]["predicted_loss"] > 0 and result["optimum"]["chinchilla_tokens_per_param"] == 20
    assert (stage / "scaling.png").is_file() and (stage / "isoflop.png").is_file()
    section = (stage / "section.md").read_text()
    assert "Compute-optimal allocation" in section and "Held-out check" in section
    # the sweep again on the same folder: every sub-run finished, so each is read back, none trains again
    from llmcycle.data import load_data
    from llmcycle.pretrain.scaling import run_sweep

    weights = sorted(stage.glob("runs/*/model/model.safetensors"))
    assert len(weights) == 7
    stamps = [w.stat().st_mtime_ns for w in weights]
    data = load_data("builtin:dialogues")
    cfg = ScalingConfig.from_dict(tiny_sweep(small_tokenizer))
    again = run_sweep(cfg, stage, texts=[r["input"] for r in data["train"]],
                      heldout=[r["input"] for r in data["validation"]])
    assert [r["loss"] for r in again["runs"]] == [r["loss"] for r in result["runs"]]
    assert again["fit"] == pytest.approx(result["fit"])
    assert [w.stat().st_mtime_ns for w in weights] == stamps
