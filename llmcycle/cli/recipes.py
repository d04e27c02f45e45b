"""Recipe commands (``run``, ``plan``, ``reference``), ``data`` and the ``estimate`` calculators."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from llmcycle.cli.output import console, say, table
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
