"""A recipe that tunes: the evaluate stage compares base and tuned, and a resumed run reuses the tuned model."""

from __future__ import annotations

import json

from llmcycle.lifecycle.recipe import Recipe
from llmcycle.lifecycle.runner import run_recipe
from tests.cli_helpers import run_cli


def tune_recipe(tmp_path, max_new_tokens: int = 4) -> Recipe:
    return Recipe.from_dict({
        "name": "t", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-t5"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 4},
        "stages": [{"tune": {"method": "lora", "lora": {"r": 4}, "max_steps": 3, "batch_size": 2, "save_every": 3}},
                   {"evaluate": {"generation": {"max_new_tokens": max_new_tokens}, "bootstrap_resamples": 100,
                                 "metrics": ["rouge", "length"]}}],
    })


def test_tune_then_evaluate_base_vs_tuned_and_resume(tmp_path):
    run = run_recipe(tune_recipe(tmp_path))
    result = json.loads(run.file("01-tune", "tune", "tune_result.json").read_text())
    assert result["steps"] == 3 and 0 < result["pct"] < 5
    assert (run.file("01-tune", "tune", "model", "adapter_config.json")).is_file()
    metrics = json.loads(run.file("02-evaluate", "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned"} and metrics["baseline"] == "base"
    report = run.file("report.md").read_text()
    assert "## Fine-tuning: lora" in report and "![loss curve](01-tune/tune/loss_curve.png)" in report
    # change only the evaluate stage: tune is skipped, evaluate loads the tuned adapter from the run directory
    again = run_recipe(tune_recipe(tmp_path, max_new_tokens=5), run_dir=run.path)
    metrics = json.loads(again.file("02-evaluate", "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned"}
    preds = again.file("02-evaluate", "predictions", "tuned.jsonl").read_text().splitlines()
    assert len(preds) == 4


def test_tune_cli(tmp_path, monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "tune", "builtin:tiny-gpt2", "--max-steps", "2", "--batch-size", "2",
                             "--n", "8", "--set", "lora.r=2", "--runs-dir", str(tmp_path))
    assert code == 0, err
    run = next(tmp_path.glob("tune-*"))
    assert (run / "tune" / "model" / "adapter_config.json").is_file() and (run / "report.html").is_file()
    assert "trainable" in out
    code, _, err = run_cli(monkeypatch, capsys, "tune", "builtin:tiny-t5", "--method", "magic")
    assert code == 1 and "method" in err
