"""A recipe that tunes a LoRA adapter, then optimises: merge and int8 measured against the tuned model."""

from __future__ import annotations

import json

from llmcycle.recipe.recipe import Recipe
from llmcycle.recipe.runner import run_recipe


def test_tune_then_optimize_merges_and_quantises_the_tuned_model(tmp_path):
    recipe = Recipe.from_dict({
        "name": "t", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-t5"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 3},
        "stages": [{"tune": {"method": "lora", "lora": {"r": 4}, "max_steps": 2, "batch_size": 2, "save_every": 2}},
                   {"optimize": {"methods": ["merge", "int8"],
                                 "measure": {"n": 3, "latency_n": 0, "generation": {"max_new_tokens": 4}}}}],
    })
    run = run_recipe(recipe)
    result = json.loads(run.file("02-optimize", "optimize_result.json").read_text())
    assert [r["model"] for r in result["table"]] == ["baseline", "merge", "int8"]
    assert result["variants"]["merge"]["details"]["max_abs_logit_diff"] < 1e-4
    assert result["variants"]["merge"]["examples"] == result["baseline"]["examples"]
    assert run.file("02-optimize", "int8", "model", "llmcycle_quantization.json").is_file()
    report = run.file("report.md").read_text()
    assert "## Deployment optimisation" in report and "| merge |" in report
    glance = report[report.index("## The lifecycle at a glance"):report.index("## Fine-tuning")]
    assert "| int8 | 02-optimize (3 examples) |" in glance and "| unoptimised |" in glance
    assert "measured: 01-tune (lora, 2 steps)" in glance and "process peak RSS" in glance


def test_serve_stage_serves_the_tuned_adapter(tmp_path):
    recipe = Recipe.from_dict({
        "name": "t", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-gpt2"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 3},
        "stages": [{"tune": {"method": "lora", "lora": {"r": 4}, "max_steps": 2, "batch_size": 2, "save_every": 2}},
                   {"serve": {"requests": 3, "clients": 3, "generation": {"max_new_tokens": 4}}}],
    })
    run = run_recipe(recipe)
    smoke = json.loads(run.file("02-serve", "serve_smoke.json").read_text())
    assert smoke["passed"] and smoke["matches_offline"] == 3
    assert "## Serving smoke test: passed" in run.file("report.md").read_text()
