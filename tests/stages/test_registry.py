"""The stage contract: a kind registered once is a recipe entry, a CLI command, a planned step and a report section;
``llmcycle plan`` prints a chain with memory estimates without loading a model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from pydantic import Field

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import ConfigError
from llmcycle.recipe.recipe import Recipe
from llmcycle.recipe.reference import recipe_reference
from llmcycle.recipe.runner import run_recipe
from llmcycle.stages import BaseStage, Glance, ModelHandoff, get_stage, register_stage, stage_kinds, unregister_stage
from tests.cli_helpers import run_cli


class CountConfig(StageConfig):
    """Count the words of the model's greedy outputs."""

    n: int = Field(2, ge=1, description="Rows of the data split to generate for.")


class Count(BaseStage):
    kind, config_cls, title = "count", CountConfig, "Word counts"

    def check(self, cfg, incoming: ModelHandoff):
        return "it counts words of full-precision models only" if incoming.form == "quantized" else None

    def run(self, ctx, cfg, out: Path) -> str:
        from llmcycle.generation import GenerationSettings, generate

        rows = ctx.eval_rows().select(range(cfg.n))
        outputs = generate(ctx.model, list(rows["input"]), GenerationSettings(max_new_tokens=4))
        counts = [len(o.split()) for o in outputs]
        (out / "counts.json").write_text(json.dumps(counts))
        return f"## Word counts\n\n{ctx.incoming.label}: {counts}\n"

    def glance(self, folder: Path, cfg) -> Glance:
        counts = json.loads((folder / "counts.json").read_text())
        return Glance(figures=[["words per output", f"{sum(counts) / len(counts):.1f}", folder.name]])


@pytest.fixture
def count_stage():
    stage = register_stage(Count())
    yield stage
    unregister_stage("count")


def test_register_stage_refuses_duplicates_and_non_stages(count_stage):
    with pytest.raises(ValueError, match="already registered"):
        register_stage(Count())
    with pytest.raises(TypeError, match="Stage protocol"):
        register_stage(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown stage 'nope'; valid: info, estimate"):
        get_stage("nope")


def test_a_stage_of_ones_own_is_a_recipe_entry_a_command_a_plan_step_and_a_report_section(count_stage, tmp_path,
                                                                                          monkeypatch, capsys):
    assert stage_kinds()[-1] == "count" and "### count" in recipe_reference()
    recipe = Recipe.from_dict({"name": "c", "runs_dir": str(tmp_path / "runs"), "model": {"source": "builtin:tiny-t5"},
                               "data": {"source": "builtin:dialogues", "split": "test", "n": 3},
                               "stages": [{"count": {"n": 2}}]})
    run = run_recipe(recipe)
    assert len(json.loads(run.file("01-count", "counts.json").read_text())) == 2
    report = run.file("report.md").read_text()
    assert "## Word counts" in report and "| words per output |" in report
    with pytest.raises(ConfigError, match=r"stages\[0\]\.count: m: unknown field; valid: n"):
        Recipe.from_dict({"model": {}, "stages": [{"count": {"m": 1}}]})

    code, out, err = run_cli(monkeypatch, capsys, "stage", "count", "builtin:tiny-t5", "--set", "n=3",
                             "--runs-dir", str(tmp_path / "cli"))
    assert code == 0, err
    cli_run = next((tmp_path / "cli").glob("count-*"))
    assert len(json.loads((cli_run / "01-count" / "counts.json").read_text())) == 3 and "Word counts" in out

    bad = Recipe.from_dict({"name": "c", "runs_dir": str(tmp_path / "bad"), "model": {"source": "builtin:tiny-t5"},
                            "stages": [{"optimize": {"methods": ["int8"], "hand_on": "int8"}}, {"count": {}}]})
    with pytest.raises(ConfigError, match=r"stages\[1\]\.count cannot start from int8 \(quantised weights, from "
                                          r"01-optimize\): it counts words"):
        run_recipe(bad)
    assert not (tmp_path / "bad").exists()


def test_plan_prints_the_chain_with_memory_estimates_offline_and_loads_nothing(monkeypatch, capsys):
    from llmcycle.recipe.plan import plan_recipe, plan_rows
    from llmcycle.recipe.recipe import load_recipe

    recipe_file = str(Path(__file__).resolve().parents[2] / "recipes" / "dialogsum-flan-t5-base.yaml")
    code, out, err = run_cli(monkeypatch, capsys, "plan", recipe_file)
    assert code == 0, err
    for line in ("04-tune", "05-tune", "07-align", "08-optimize", "09-serve"):
        assert line in out
    assert out.count("est.") == 3  # the two tune stages and align (a table cell may wrap, a word does not)
    recipe = load_recipe(recipe_file)
    rows = {r[0]: r for r in plan_rows(recipe, plan_recipe(recipe, "runs/x"))}
    assert rows["06-evaluate"][1] == "tuned-lora (lora adapter, 05-tune)" and rows["08-optimize"][2] == \
        "int8 (quantised weights)"
    assert rows["05-tune"][3].startswith("est. peak ") and " GB of " in rows["05-tune"][3]


@pytest.mark.parametrize("recipe", ["recipes/dialogsum-flan-t5-base.yaml", "quickstart"])
def test_plan_builds_no_model(recipe):
    """In a fresh process: planning reads configs only; no modeling code is imported, no weights are built."""
    import subprocess

    code = ("import sys; from llmcycle.recipe.recipe import load_recipe; from llmcycle.recipe.plan import plan_recipe, "
            f"plan_rows; r = load_recipe({recipe!r}); rows = plan_rows(r, plan_recipe(r, 'runs/x')); "
            "print(sum('est. peak' in row[3] for row in rows), "
            "[m for m in sys.modules if '.modeling_' in m and m.startswith('transformers.models.') "
            "and '.auto.' not in m])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2], env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    estimates, modeling = proc.stdout.strip().rsplit("\n", 1)[-1].split(" ", 1)
    assert int(estimates) >= 2 and modeling == "[]", proc.stdout


def test_plan_refuses_a_typo_at_any_depth_naming_the_dotted_field(monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "plan", "--set", "prompt_lab.generation.greedy.temprature=0.5")
    assert code == 1 and "stages[2].prompt_lab: generation.greedy.temprature: unknown field; valid:" in err
    assert len(err.strip().splitlines()) == 1
