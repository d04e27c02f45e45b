"""A run's report: what was run, "the lifecycle at a glance", then each finished stage's section.

The glance puts every model the run produced side by side, from the stages' own results: each
stage contributes its rows (``Stage.glance``: evaluate's scores, align's before/after, optimize's
variants, serve's verdict, estimate's and tune's figures). Each row names the stage and sample its
figures come from: stages measure on their own samples and settings, so figures from different
stages are comparable only as far as their note says.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmcycle.models.builtins import BUILTINS
from llmcycle.recipe.plan import Step
from llmcycle.recipe.recipe import Recipe
from llmcycle.report import md_table, write_report
from llmcycle.stages import Glance

MODEL_COLUMNS = ["model", "measured in", "ROUGE-1", "change (points)", "toxicity", "size MB", "tokens/s"]


def glance_section(run_path: Path, steps: list[Step]) -> str:
    """Markdown: the models side by side, the serving check, estimates against measurements."""
    glance = Glance()
    for s in steps:
        folder = run_path / s.name
        if (folder / "section.md").is_file():
            g = s.stage.glance(folder, s.cfg)
            glance.models += g.models
            glance.lines += g.lines
            glance.figures += g.figures
    parts = ["## The lifecycle at a glance\n"]
    if glance.models:
        parts.append("Every model this run produced, from each stage's own results (ROUGE-1 with its 95% bootstrap "
                     "interval where the stage computed one; changes in points; each stage measures on its own "
                     "sample, named in the second column).\n")
        parts.append(md_table(MODEL_COLUMNS, glance.models))
    parts += [f"\n{line}\n" for line in glance.lines]
    if glance.figures:
        parts.append("\n### Estimates and measurements\n")
        parts.append(md_table(["what", "figure", "note"], glance.figures))
    if len(parts) == 1:
        parts.append("(no stage with results yet)\n")
    return "\n".join(parts) + "\n"


def chain_section(steps: list[Step]) -> str:
    """Which model each stage received and handed on."""
    rows = [[s.name, s.incoming.label, s.handoff.label if s.hands_on_new else "-"] for s in steps]
    return "### The model chain\n\n" + md_table(["stage", "received", "handed on"], rows)


def _random_builtin(source: str) -> bool:
    """Whether ``source`` is a builtin whose weights are random (``builtin:tiny-t5``)."""
    if not source.startswith("builtin:"):
        return False
    spec = BUILTINS.get(source.removeprefix("builtin:"))
    return spec is not None and not spec.pretrained


def write_run_report(run_path: Path, recipe: Recipe, steps: list[Step]) -> Path:
    """``report.md`` and a self-contained ``report.html`` in ``run_path`` (image paths relative to it)."""
    env = json.loads((run_path / "environment.json").read_text(encoding="utf-8"))
    m = recipe.model
    weights = "random (untrained)" if m.weights == "random" or _random_builtin(m.source) else "pretrained"
    parts = [f"# llmcycle run: {recipe.name}\n",
             f"- model: `{m.source}` (weights: {weights}, dtype: {m.dtype})",
             f"- data: `{recipe.data.source}`" + (f", split `{recipe.data.split}`" if recipe.data.split else ""),
             f"- run directory: `{run_path}`",
             f"- torch {env['versions'].get('torch')}, transformers {env['versions'].get('transformers')}, "
             f"python {env['python']}\n",
             glance_section(run_path, steps), chain_section(steps)]
    for s in steps:
        section = run_path / s.name / "section.md"
        parts.append(section.read_text(encoding="utf-8") if section.is_file() else f"## {s.stage.title}\n\n(not run)\n")
    return write_report(run_path, "\n".join(parts), title=f"llmcycle: {recipe.name}")
