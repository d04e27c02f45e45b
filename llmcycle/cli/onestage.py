"""Stage commands are one-stage recipes: ``llmcycle tune MODEL ...`` runs the recipe
``{model: MODEL, data: ..., stages: [{tune: ...}]}`` through the same runner, so it writes exactly the
layout a recipe's tune stage writes (``<run>/01-tune/...``, ``recipe.json``, ``report.html``).

``--set`` reaches every field: ``--set lora.r=32`` (the stage's), ``--set model.dtype=bf16`` and
``--set data.n=100`` (the recipe's model and data).
"""

from __future__ import annotations

from typing import Any

from llmcycle.cli.output import console, say
from llmcycle.recipe.plan import plan_recipe
from llmcycle.recipe.recipe import Recipe, apply_overrides
from llmcycle.recipe.runner import run_recipe

TOP_FIELDS = ("model", "data", "runs_dir", "name", "templates_file")
"""``--set`` keys that are the recipe's own fields; every other key is the stage's."""


def one_stage_recipe(kind: str, model: str, data: dict[str, Any], fields: dict[str, Any], overrides: list[str],
                     runs_dir: str | None = None, templates_file: str | None = None) -> Any:
    """The validated recipe of one ``kind`` stage (every field checked before any work)."""
    recipe: dict[str, Any] = {"name": kind.replace("_", "-"), "model": {"source": model}, "data": data,
                              "stages": [{kind: fields}]}
    if runs_dir:
        recipe["runs_dir"] = runs_dir
    if templates_file:
        recipe["templates_file"] = templates_file
    top = [o for o in overrides if o.split("=", 1)[0].split(".")[0] in TOP_FIELDS]
    stage = [o if o.startswith(f"{kind}.") else f"{kind}.{o}" for o in overrides if o not in top]
    return Recipe.from_dict(apply_overrides(recipe, top + stage), where=kind.replace("_", "-"))


def run_one_stage(kind: str, model: str, data: dict[str, Any], fields: dict[str, Any], overrides: list[str] | None,
                  run_dir: str | None, runs_dir: str | None, templates_file: str | None = None) -> Any:
    """Run it; print the stage's report section and where the report is. Returns the run."""
    recipe = one_stage_recipe(kind, model, data, fields, list(overrides or []), runs_dir, templates_file)
    run = run_recipe(recipe, run_dir=run_dir, progress=say)
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return run
    step = plan_recipe(recipe, run.path)[0]
    section = run.file(step.name, "section.md")
    if section.is_file():  # the stage's own report section, as the report shows it (images aside)
        from rich.markdown import Markdown

        console.print(Markdown(section.read_text(encoding="utf-8"), hyperlinks=False))
    console.print(f"done: {run.path}/report.html  (resume with --run-dir {run.path})", highlight=False,
                  markup=False, soft_wrap=True)
    return run
