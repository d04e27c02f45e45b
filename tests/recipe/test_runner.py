"""The recipe runner: run directories, resume, stage selection, overrides, shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.recipe import runner as runner_mod
from llmcycle.recipe.recipe import Recipe, builtin_recipes, load_recipe
from llmcycle.recipe.runner import run_recipe
from tests.stage_helpers import spy_on


@pytest.fixture
def data_file(tmp_path):
    rows = [{"dialogue": f"#Person1#: Hello {i}.\n#Person2#: Hi, how can I help?", "summary": f"A greeting {i}."}
            for i in range(5)]
    path = tmp_path / "tiny.test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def recipe(tmp_path, data_file, **stage_overrides) -> Recipe:
    return Recipe.from_dict({
        "name": "t", "runs_dir": str(tmp_path / "runs"),
        "model": {"source": "builtin:tiny-t5"}, "data": {"source": str(data_file)},
        "stages": [{"info": {}}, {"generate": {"n_examples": 3, "generation": {"max_new_tokens": 5, "min_new_tokens": 2,
                                                                               **stage_overrides}}}],
    })


def test_run_writes_run_directory_and_report(tmp_path, data_file):
    run = run_recipe(recipe(tmp_path, data_file))
    files = {p.relative_to(run.path).as_posix() for p in run.path.rglob("*") if p.is_file()}
    assert {"recipe.json", "environment.json", "report.md", "report.html", "01-info/model_card.json",
            "02-generate/predictions.jsonl"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    preds = [json.loads(line) for line in run.file("02-generate/predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 3 and all(isinstance(p["prediction"], str) for p in preds)
    assert preds[0]["references"] == ["A greeting 0."]
    report = run.file("report.md").read_text()
    assert "## Model card" in report and "## Generated outputs" in report and "builtin:tiny-t5" in report
    page = run.file("report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "Model card" in page
    env = json.loads(run.file("environment.json").read_text())
    assert env["versions"]["torch"] and env["versions"]["transformers"]


def test_rerun_skips_finished_stages_and_reruns_changed_ones(tmp_path, data_file, monkeypatch):
    first = run_recipe(recipe(tmp_path, data_file))
    calls = []
    spy_on(monkeypatch, "info", calls=calls)
    spy_on(monkeypatch, "generate", calls=calls)
    run_recipe(recipe(tmp_path, data_file), run_dir=first.path)
    assert calls == []
    run_recipe(recipe(tmp_path, data_file, max_new_tokens=6), run_dir=first.path)
    assert calls == ["generate"]


def test_failed_stage_keeps_earlier_ones_and_says_how_to_resume(tmp_path, data_file, monkeypatch):
    def boom(ctx, cfg, out):
        raise LLMCycleError("the model exploded")

    spy_on(monkeypatch, "generate", boom)
    with pytest.raises(LLMCycleError) as err:
        run_recipe(recipe(tmp_path, data_file))
    msg = str(err.value)
    assert "stage 02-generate failed: the model exploded" in msg and "--run-dir" in msg
    run_path = next((tmp_path / "runs").iterdir())
    assert (run_path / "01-info" / "model_card.json").is_file()
    assert (run_path / "stages" / "01-info.done.json").is_file()
    assert not (run_path / "stages" / "02-generate.done.json").exists()


def test_only_and_from(tmp_path, data_file):
    run = run_recipe(recipe(tmp_path, data_file), only="generate")
    assert not run.file("01-info").exists() and run.file("02-generate", "predictions.jsonl").is_file()
    assert "(not run)" in run.file("report.md").read_text()
    with pytest.raises(LLMCycleError, match="not in this recipe"):
        run_recipe(recipe(tmp_path, data_file), only="align")


def test_resume_rejects_other_model_and_non_run_dirs(tmp_path, data_file):
    run = run_recipe(recipe(tmp_path, data_file), only="info")
    other = recipe(tmp_path, data_file).model_copy(update={"model": recipe(tmp_path, data_file).model.model_copy(
        update={"source": "builtin:tiny-bart"})})
    with pytest.raises(LLMCycleError, match="was run with model builtin:tiny-t5"):
        run_recipe(other, run_dir=run.path)
    with pytest.raises(LLMCycleError, match="not a llmcycle run directory"):
        run_recipe(recipe(tmp_path, data_file), run_dir=tmp_path)


def test_run_dir_that_does_not_exist_yet_starts_a_run_there(tmp_path, data_file):
    run = run_recipe(recipe(tmp_path, data_file), run_dir=tmp_path / "mine" / "r1", only="info")
    assert run.path == tmp_path / "mine" / "r1" and run.file("01-info", "model_card.json").is_file()
    (tmp_path / "empty").mkdir()
    assert run_recipe(recipe(tmp_path, data_file), run_dir=tmp_path / "empty", only="info").path == tmp_path / "empty"


def test_new_runs_never_reuse_a_directory(tmp_path, data_file):
    a = run_recipe(recipe(tmp_path, data_file), only="info")
    b = run_recipe(recipe(tmp_path, data_file), only="info")
    assert a.path != b.path and a.file("report.md").is_file()


@pytest.mark.parametrize(
    "stages, fragment",
    [
        ([{"generate": {"generation": {"max_new_tokens": 0}}}], "stages[0].generate: generation.max_new_tokens"),
        ([{"generate": {"generation": {"temperature": 0, "do_sample": True}}}], "temperature must be > 0"),
        ([{"generate": {"generation": {"top_p": 1.5}}}], "top_p must be in (0, 1]"),
        ([{"train": {}}], "unknown stage 'train'"),
        ([{"info": {}, "generate": {}}], "one key"),
        ([{"info": {"colour": "red"}}], "stages[0].info: colour: unknown field; valid: trace"),
        ([{"info": []}], "stages[0].info: settings must be a mapping"),
    ],
)
def test_bad_stage_configs_name_the_field(stages, fragment):
    with pytest.raises(ConfigError) as err:
        Recipe.from_dict({"model": {}, "stages": stages})
    assert fragment in str(err.value)


def test_bad_top_level_fields():
    with pytest.raises(ConfigError, match="model.dtype"):
        Recipe.from_dict({"model": {"dtype": "fp64"}})
    with pytest.raises(ConfigError, match="model: Field required"):
        Recipe.from_dict({"stages": [{"info": {}}]})
    with pytest.raises(ConfigError, match="name"):
        Recipe.from_dict({"model": {}, "name": "has spaces/slash"})


def test_overrides(tmp_path):
    r = load_recipe("quickstart", ["model.source=builtin:tiny-t5", "generate.generation.max_new_tokens=7", "data.n=3"])
    assert r.model.source == "builtin:tiny-t5" and r.data.n == 3
    assert dict(r.stage_configs())["generate"].generation.max_new_tokens == 7
    with pytest.raises(ConfigError, match="expected key=value"):
        load_recipe("quickstart", ["oops"])


def test_invalid_yaml_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages:\n  - info: {\n")
    with pytest.raises(ConfigError, match="bad.yaml: line"):
        load_recipe(str(bad))
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_recipe(str(listy))


@pytest.mark.parametrize("name", builtin_recipes())
def test_every_shipped_recipe_validates(name):
    r = load_recipe(name)
    assert r.stages and r.model.source


REPO_RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", REPO_RECIPES, ids=lambda p: p.name)
def test_every_yaml_under_recipes_validates(path):
    r = load_recipe(str(path))
    kinds = [k for k, _ in r.stage_configs()]
    assert r.model.source and kinds


def test_recipes_folder_is_what_the_package_ships_and_quickstart_is_the_default():
    assert {p.stem for p in REPO_RECIPES} == set(builtin_recipes())
    quick = next(p for p in REPO_RECIPES if p.stem == "quickstart")
    assert load_recipe(None) == load_recipe(str(quick))
    kinds = [k for k, _ in load_recipe(None).stage_configs()]
    # the quickstart walks the whole lifecycle
    assert {"info", "estimate", "prompt_lab", "tune", "evaluate", "align", "optimize", "serve"} <= set(kinds)
    course = [k for k, _ in load_recipe("dialogsum-flan-t5-base").stage_configs()]
    assert course.count("tune") == 2 and "align" in course


def test_runner_module_exposes_run_recipe():
    assert runner_mod.run_recipe is run_recipe
