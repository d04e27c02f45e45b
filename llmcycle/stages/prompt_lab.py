"""Stage ``prompt_lab``: templates x shot counts x generation settings, each cell scored with ROUGE.

The grid itself is ``llmcycle.evaluation.prompt_lab.run_prompt_lab``; this module owns the stage:
where the shots come from (the train split), the report section and the chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmcycle.data import load_data_from_config
from llmcycle.evaluation.prompt_lab import Cell, PromptLabConfig, run_prompt_lab
from llmcycle.report import bar_chart, md_table
from llmcycle.stages.base import BaseStage, StageContext, register_stage


class PromptLab(BaseStage):
    kind = "prompt_lab"
    config_cls = PromptLabConfig
    title = "Prompt lab"

    def writes(self, cfg: PromptLabConfig) -> list[str]:
        return ["predictions.jsonl", "metrics.json", "prompt_lab.png", "section.md"]

    def run(self, ctx: StageContext, cfg: PromptLabConfig, out: Path) -> str:
        data = ctx.data
        rows = ctx.eval_rows()
        pool = data["train"] if "train" in data else None
        if pool is None and any(cfg.shots):
            pool = load_data_from_config(ctx.data_config.model_copy(update={"split": "train", "n": None}))["train"]
        cells = run_prompt_lab(ctx.model, rows, pool, cfg, out, progress=ctx.progress)
        return lab_section(cells, rows, cfg, out, ctx.rel(out))


def lab_section(cells: list[Cell], rows: Any, cfg: PromptLabConfig, out_dir: str | Path, rel: str) -> str:
    """The report section: the grid table, a chart, side-by-side examples of the best and worst cells."""
    ranked = sorted(cells, key=lambda c: -c.rouge["rouge1"])
    table = md_table(["template", "shots", "generation", "ROUGE-1", "ROUGE-2", "ROUGE-L", "prompt tokens (mean)",
                      "prompts that dropped shots", "inputs truncated", "seconds"],
                     [[c.template, c.shots, c.generation, f"{c.rouge['rouge1']:.4f}", f"{c.rouge['rouge2']:.4f}",
                       f"{c.rouge['rougeL']:.4f}", f"{c.prompt_tokens_mean:.0f}", c.n_dropped_shots, c.n_truncated,
                       f"{c.seconds:.1f}"] for c in ranked])
    bar_chart({c.label: {"rouge1": c.rouge["rouge1"], "rougeL": c.rouge["rougeL"]} for c in ranked[:12]},
              Path(out_dir) / "prompt_lab.png", "Prompt lab: ROUGE by cell (best 12)")
    parts = [f"## Prompt lab: {len(cells)} cells x {len(cells[0].predictions)} examples\n",
             "Ranked by ROUGE-1. Shots come from the train split; nothing is cut silently: the budget "
             "columns count prompts that lost shots or had their input truncated.\n", table,
             f"\n![prompt lab]({rel}/prompt_lab.png)\n"]
    n = min(cfg.n_side_by_side, len(cells[0].predictions))
    if n:
        best, worst = ranked[0], ranked[-1]
        body = [[i + 1, (rows[i]["references"] or [""])[0], best.predictions[i], worst.predictions[i]]
                for i in range(n)]
        parts += ["### Best vs worst cell\n",
                  md_table(["#", "reference", f"best: {best.label}", f"worst: {worst.label}"], body)]
    return "\n".join(parts)


STAGE: Any = register_stage(PromptLab())
