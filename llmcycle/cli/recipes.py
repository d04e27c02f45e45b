"""Recipe commands (``run``, ``plan``, ``reference``), ``data`` and the ``estimate`` calculators."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from llmcycle.cli.output import console, field_help, say, table
from llmcycle.core.config import ModelConfig
from llmcycle.core.errors import ConfigError
from llmcycle.data import LoadReport, load_data
from llmcycle.recipe.plan import plan_recipe, plan_rows, plan_text
from llmcycle.recipe.recipe import load_recipe
from llmcycle.recipe.reference import recipe_reference
from llmcycle.recipe.runner import run_recipe


def data_cmd(
    source: str = typer.Argument("builtin:dialogues", help="builtin:dialogues, a file, a directory or a hub id."),
    split: Optional[str] = typer.Option(None, help="Only this split."),
    input_column: str = typer.Option("dialogue", help="Column holding the model input."),
    reference_column: Optional[List[str]] = typer.Option(None, "--reference-column",
                                                         help="Reference column(s); repeat for several."),
    n: Optional[int] = typer.Option(None, help="Seeded subsample of at most n rows per split."),
    on_bad_rows: str = typer.Option("error", help="error | skip."),
    show: int = typer.Option(1, help="Print this many example rows per split."),
) -> None:
    """Load a data set and show its splits, row counts, references per row and an example."""
    report = LoadReport()
    data = load_data(source, report=report, split=split, input_column=input_column,
                     reference_columns=reference_column or None, n=n, on_bad_rows=on_bad_rows)
    rows = []
    for name, ds in data.items():
        refs = ds["references"]
        per_row = sum(map(len, refs)) / max(len(refs), 1)
        rows.append((name, f"{len(ds):,}", report.bad_rows.get(name, 0), f"{per_row:.2f}",
                     report.sources.get(name, "")))
    console.print(table(f"{source}", rows, ("split", "rows", "bad rows skipped", "references/row", "from")))
    for name, ds in data.items():
        for row in ds.select(range(min(show, len(ds)))):
            reference = row["references"][0] if row["references"] else "-"
            console.print(f"{name} input:\n{preview(row['input'])}\nreference: {preview(reference)}\n")


PREVIEW_CHARS = 2000


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """``text`` cut to ``limit`` characters for a preview, saying how much was left out (a 30 MB row prints
    in constant time)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ... ({len(text) - limit:,} more characters)"


def run_cmd(
    recipe: Optional[str] = typer.Argument(None, help="Recipe YAML path or shipped name (default: quickstart)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a field: --set model.source=builtin:"
                                             "tiny-t5, --set generate.max_new_tokens=32. Repeatable."),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help="Resume this run directory: finished stages "
                                          "with the same config are skipped (a new or empty one starts a run "
                                          "there); without RECIPE, the run's own recipe.json is run again."),
    runs_dir: Optional[str] = typer.Option(None, "--runs-dir", help="Where new run directories go."),
    only: Optional[str] = typer.Option(None, "--only", help="Run only this stage."),
    from_stage: Optional[str] = typer.Option(None, "--from", help="Start from this stage."),
) -> None:
    """Run a recipe (default: the offline quickstart) into a run directory with a report."""
    overrides = list(set_ or []) + ([f"runs_dir={runs_dir}"] if runs_dir else [])
    saved = Path(run_dir, "recipe.json") if run_dir else None
    if recipe is None and saved is not None and saved.is_file():  # resume a run with its own recipe
        recipe = str(saved)
    rec = load_recipe(recipe, overrides)
    console.print(f"recipe {rec.name}: model {rec.model.source}, data {rec.data.source}, "
                  f"stages: {', '.join(k for k, _ in rec.stage_configs())}", highlight=False, markup=False,
                  soft_wrap=True)
    run = run_recipe(rec, run_dir=run_dir, only=only, from_stage=from_stage, progress=say)
    console.print(f"done: {run.path}/report.html (and report.md)", highlight=False, markup=False, soft_wrap=True)


def plan_cmd(
    recipe: Optional[str] = typer.Argument(None, help="Recipe YAML path or shipped name (default: quickstart)."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a field, as for `llmcycle run`."),
) -> None:
    """Check a recipe whole and print its stage chain: the model each stage receives and hands on, what it writes,
    and the estimated peak memory of the stages that train. No model is loaded."""
    rec = load_recipe(recipe, list(set_ or []))
    steps = plan_recipe(rec, Path(rec.runs_dir) / f"{rec.name}-<timestamp>")
    console.print(plan_text(rec, steps, recipe or "quickstart"), highlight=False, markup=False, soft_wrap=True)
    rows = plan_rows(rec, steps)
    console.print(table("", [r[:4] for r in rows], ("stage", "receives", "hands on", "notes")))
    console.print("writes, in <run>/<stage>/:", highlight=False, markup=False, soft_wrap=True)
    for r in rows:
        console.print(f"  {r[0]}: {r[4]}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"checked: every field of every stage; run it with: llmcycle run {recipe or ''}".rstrip(),
                  highlight=False, markup=False, soft_wrap=True)


def reference_cmd() -> None:
    """Print the recipe reference (every field of every stage, generated from the config classes)."""
    print(recipe_reference())


def check_template_cmd(
    model: Optional[str] = typer.Argument(None, help="Hub id, local directory or builtin:NAME (with --recipe: "
                                          "instead of the recipe's model, e.g. a builtin stand-in)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Check every tune stage of this recipe (YAML path or "
                                         "shipped name) against each later stage that prompts its model."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a recipe field, as for `llmcycle run`."),
    template: str = typer.Option("none", help="Without --recipe: the prompt template trained and prompted with."),
    data: Optional[str] = typer.Option(None, help="Data whose shortest of the first 32 train rows is rendered "
                                       "(default: the recipe's, else builtin:dialogues)."),
    chat: Optional[str] = typer.Option(None, help=field_help(ModelConfig, "chat") + " Default: the recipe's, "
                                       "else auto."),
) -> None:
    """The template contract: one example rendered by the training collator, the evaluation prompt builder and
    the server gives the same prompt tokens, and its labels end with a token generation stops on."""
    from llmcycle.models import load_model
    from llmcycle.recipe.template_check import check_recipe, check_template, example_row, recipe_pairs

    overrides = list(set_ or []) + ([f"model.source={model}"] if model and recipe else []) \
        + ([f"data.source={data}"] if data and recipe else []) + ([f"model.chat={chat}"] if chat and recipe else [])
    if recipe is None and model is None:
        raise ConfigError("check-template: give a MODEL, or --recipe NAME")
    if recipe is not None:
        rec = load_recipe(recipe, overrides)
        rec.register_templates()
        steps = plan_recipe(rec, Path(rec.runs_dir) / "(plan)")
        pairs = recipe_pairs(steps)
        if not pairs:
            say(f"{rec.name}: no tune stage is followed by a stage that prompts its model; nothing to check")
            return
        source, mode, data_src = rec.model.source, rec.model.chat, rec.data
    else:
        source, mode, data_src = model, chat or "auto", None
    loaded = load_model(source, chat=mode)
    from llmcycle.core.config import DataConfig
    from llmcycle.data import load_data_from_config

    data_cfg = data_src if data_src is not None else DataConfig(source=data or "builtin:dialogues")
    splits = load_data_from_config(data_cfg)
    rows = splits["train"] if "train" in splits else splits[next(iter(splits))]
    if recipe is not None:
        for tune, later, name in pairs:
            found = check_template(loaded, example_row(rows), name, list(tune.cfg.templates))
            say(f"{tune.name} -> {later.name}:")
            for line in found.describe():
                console.print(line, highlight=False, markup=False)
        problems = check_recipe(loaded, rows, steps)
    else:
        found = check_template(loaded, example_row(rows), template)
        for line in found.describe():
            console.print(line, highlight=False, markup=False)
        problems = found.problems
    if problems:
        raise ConfigError(f"template check failed: {problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                                     if len(problems) > 1 else ""))
