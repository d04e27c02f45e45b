"""A recipe that tunes: the evaluate stage compares base and tuned, and a resumed run reuses the tuned model."""

from __future__ import annotations

import json

from llmcycle.recipe.recipe import Recipe
from llmcycle.recipe.runner import run_recipe
from tests.cli_helpers import run_cli
from tests.stage_helpers import spy_on


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
    result = json.loads(run.file("01-tune", "tune_result.json").read_text())
    assert result["steps"] == 3 and 0 < result["pct"] < 5
    assert (run.file("01-tune", "model", "adapter_config.json")).is_file()
    metrics = json.loads(run.file("02-evaluate", "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned"} and metrics["baseline"] == "base"
    report = run.file("report.md").read_text()
    assert "## Fine-tuning: lora" in report and "![loss curve](01-tune/loss_curve.png)" in report
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
    # exactly the layout a recipe's tune stage writes
    assert (run / "01-tune" / "model" / "adapter_config.json").is_file() and (run / "report.html").is_file()
    assert (run / "recipe.json").is_file() and (run / "stages" / "01-tune.done.json").is_file()
    assert "trainable parameters" in out
    code, _, err = run_cli(monkeypatch, capsys, "tune", "builtin:tiny-t5", "--method", "magic")
    assert code == 1 and "method" in err


def two_methods_recipe(tmp_path, full_steps: int = 2) -> Recipe:
    common = {"batch_size": 2, "save_every": 50, "max_input_tokens": 64, "max_target_tokens": 16}
    return Recipe.from_dict({
        "name": "t", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-t5"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 3},
        "stages": [{"tune": {"method": "full", "max_steps": full_steps, **common}},
                   {"tune": {"method": "lora", "lora": {"r": 4}, "max_steps": 2, "start": "recipe_model", **common}},
                   {"evaluate": {"generation": {"max_new_tokens": 3}, "bootstrap_resamples": 100,
                                 "metrics": ["rouge"]}}],
    })


def test_full_and_lora_side_by_side_and_a_changed_tune_reruns_what_follows(tmp_path, monkeypatch):
    run = run_recipe(two_methods_recipe(tmp_path))
    metrics = json.loads(run.file("03-evaluate", "metrics.json").read_text())
    assert set(metrics["models"]) == {"base", "tuned-full", "tuned-lora"}
    # the LoRA stage started from the recipe's model, not from the fully tuned one
    lora = json.loads(run.file("02-tune", "tune_result.json").read_text())
    assert lora["method"] == "lora" and lora["total"] > lora["trainable"]
    assert json.loads((run.file("02-tune", "model", "adapter_config.json")).read_text())[
        "base_model_name_or_path"] == "builtin:tiny-t5"
    calls = []
    for kind in ("tune", "evaluate"):
        spy_on(monkeypatch, kind, calls=calls)
    run_recipe(two_methods_recipe(tmp_path), run_dir=run.path)
    assert calls == []
    run_recipe(two_methods_recipe(tmp_path, full_steps=3), run_dir=run.path)
    assert calls == ["tune", "tune", "evaluate"]  # everything after the changed tune stage ran again
    kept = sorted(p.name for p in run.path.iterdir() if ".superseded-" in p.name)
    assert [k.split(".")[0] for k in kept] == ["01-tune", "02-tune", "03-evaluate"]  # earlier outputs kept aside
    assert json.loads(run.file("01-tune", "tune_result.json").read_text())["steps"] == 3
