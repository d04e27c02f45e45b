"""Stage ``optimize``: deployment variants of the model it receives (cast, int8, bnb, prune, distil, merge),
each measured against it in one table; ``hand_on`` names the variant the later stages receive.

The work is ``llmcycle.optimize.run_optimize``. A method with nothing to do (merging a model that
has no adapter) is recorded as skipped with its reason, never a failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmcycle.optimize import OptimizeConfig, OptimizeResult, check_methods, run_optimize
from llmcycle.stages.base import BaseStage, Glance, ModelHandoff, StageContext, register_stage

FORMS = {"int8": "quantized", "bnb8": "quantized", "bnb4": "quantized"}
LABELS = {"merge": "merged", "prune": "pruned", "distil": "distilled"}


class Optimize(BaseStage):
    kind = "optimize"
    config_cls = OptimizeConfig
    title = "Deployment optimisation"

    def check(self, cfg: OptimizeConfig, incoming: ModelHandoff) -> str | None:
        if incoming.form == "quantized":
            return "it optimises full-precision weights; a quantised model cannot be quantised, pruned or distilled " \
                   "again (hand on another variant, or optimise before)"
        if incoming.form == "adapter" and incoming.adapter_type not in (None, "lora"):
            return (f"a {incoming.adapter_type} adapter cannot be merged into its base, so there are no weights to "
                    "optimise")
        return None

    def hand_on(self, cfg: OptimizeConfig, incoming: ModelHandoff, folder: Path) -> ModelHandoff:
        method = cfg.hand_on
        if method is None or (method == "merge" and incoming.form != "adapter"):
            return incoming  # nothing chosen, or a merge with nothing to merge: the model received
        return ModelHandoff.saved(folder / method / "model", LABELS.get(method, method), folder.name,
                                  FORMS.get(method, "weights"), dtype=method if method in ("fp16", "bf16") else None)

    def writes(self, cfg: OptimizeConfig) -> list[str]:
        return ["baseline.json", *[f"{m}/" for m in cfg.methods], "optimize_result.json", "section.md"]

    def run(self, ctx: StageContext, cfg: OptimizeConfig, out: Path) -> str:
        check_methods(cfg)  # bnb8 without a CUDA GPU: refused before the model loads
        train_data = ctx.all_splits() if "distil" in cfg.methods else None
        result = run_optimize(ctx.model, ctx.eval_rows(), cfg, out, train_data=train_data, progress=ctx.progress)
        return optimize_section(result, ctx.rel(out))

    def glance(self, folder: Path, cfg: OptimizeConfig) -> Glance:
        try:
            o = json.loads((folder / "optimize_result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        n = f"{folder.name} ({o['baseline']['n']} examples)"
        rows = []
        for row in o["table"]:
            name = "unoptimised" if row["model"] == "baseline" else row["model"]
            drop = row.get("rouge1_drop")
            rows.append([name, n, f"{row['rouge1']:.3f}",
                         "-" if drop is None else f"{0.0 - drop:+.2f} vs unoptimised", "-",
                         f"{row['size_mb']:.1f}" + (f" ({row['size_ratio']:.2f}x)" if "size_ratio" in row else ""),
                         f"{row['tokens_per_s']:.1f}" + (f" ({row['speedup']:.2f}x)" if "speedup" in row else "")])
        rows += [[m, n, "-", f"skipped: {why}", "-", "-", "-"] for m, why in o.get("skipped", {}).items()]
        return Glance(models=rows)


def optimize_section(result: OptimizeResult, rel: str) -> str:
    """Markdown for the run report: the measurement table and what each variant is."""
    head = ("| model | params | size MB | size ratio | tokens/s | speed-up | latency ms | ROUGE-1 | ROUGE-1 drop "
            "(points) | ROUGE-2 | ROUGE-L |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    lines = [head]
    for row in result.table():
        lines.append("| {model} | {params:,} | {size_mb} | {ratio} | {tokens_per_s} | {speed} | {lat} | {rouge1:.3f} | "
                     "{drop} | {rouge2:.3f} | {rougeL:.3f} |".format(
                         **row, ratio=row.get("size_ratio", 1.0), speed=row.get("speedup", 1.0),
                         lat=row["latency_ms"] if row["latency_ms"] is not None else "-",
                         drop=row.get("rouge1_drop", 0.0)))
    notes = []
    for name, m in result.variants.items():
        d = {k: v for k, v in m.details.items() if k != "build_s"}
        if d:
            notes.append(f"- **{name}**: " + ", ".join(f"{k} {v}" for k, v in d.items()))
    for name, why in result.skipped.items():
        notes.append(f"- **{name}**: skipped: {why}")
    b = result.baseline
    return (f"## Deployment optimisation\n\nEvery variant generated for the same {b.n} inputs with the same "
            f"settings; speed-up = baseline seconds / variant seconds on the whole set; size = bytes on disk. "
            f"Variants are saved under `{rel}/<method>/model`.\n\n" + "\n".join(lines)
            + ("\n\n" + "\n".join(notes) if notes else "") + "\n")


STAGE: Any = register_stage(Optimize())
