"""Stage ``scaling``: a sweep of model sizes x compute budgets pre-trained from scratch on the recipe's data, the
fit of ``L(N, D) = E + A / N^alpha + B / D^beta``, the compute-optimal N* and D* beside Chinchilla's rule, and a
held-out larger model the fit predicts (``llmcycle.pretrain.scaling``). It hands on the model it received:
the sweep's models stay in its folder (``runs/<size>-C<budget>/model``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmcycle.core.config import ModelConfig
from llmcycle.pretrain.data import row_texts
from llmcycle.pretrain.scaling import ScalingConfig, run_sweep, write_json
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, ModelHandoff, StageContext, register_stage


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) < 1e7 else f"{x:.3g}"


class Scaling(BaseStage):
    kind = "scaling"
    config_cls = ScalingConfig
    title = "Scaling laws"

    def writes(self, cfg: ScalingConfig) -> list[str]:
        return ["runs/", "scaling.json", "scaling.png", "isoflop.png", "section.md"]

    def plan_notes(self, cfg: ScalingConfig, incoming: ModelHandoff, model: ModelConfig) -> list[str]:
        total = len(cfg.sizes) * sum(cfg.budgets) + (cfg.heldout_budget or max(cfg.budgets) if cfg.heldout else 0)
        return [f"{len(cfg.sizes)} sizes x {len(cfg.budgets)} budgets{' + 1 held-out run' if cfg.heldout else ''}: "
                f"{total:.3g} training FLOPs in all"]

    def run(self, ctx: StageContext, cfg: ScalingConfig, out: Path) -> str:
        data = ctx.all_splits()
        texts = row_texts(data["train"], cfg.text) if "train" in data else []
        held = row_texts(data["validation"], cfg.text) if "validation" in data else []
        result = run_sweep(cfg, out, texts=texts, heldout=held, progress=ctx.progress)
        result["corpus"] = ctx.data_config.source
        write_json(out / "scaling.json", result)
        return scaling_section(result, ctx.rel(out))

    def glance(self, folder: Path, cfg: ScalingConfig) -> Glance:
        try:
            r = json.loads((folder / "scaling.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        f = r["fit"]
        note = ""
        if r.get("heldout"):
            note = f"held-out run predicted within {100 * r['heldout']['relative_error']:.1f}%"
        return Glance(figures=[[f"measured: {folder.name} ({len(r['runs'])} runs)",
                                f"L = {f['E']:.2f} + {f['A']:.3g}/N^{f['alpha']:.2f} + {f['B']:.3g}/D^{f['beta']:.2f};"
                                f" {r['optimal_tokens_per_param']:.1f} tokens per parameter", note]])


def scaling_section(r: dict[str, Any], rel: str) -> str:
    """The runs, the fit with its spread, approach 2's minima, the optimum beside Chinchilla, the held-out check."""
    runs = [[x["name"], f"{x['params']:,}", f"{x['tokens']:,}", f"{x['flops']:.3g}", f"{x['loss']:.3f}",
             f"{x['tokens_per_s']:,.0f}", f"{100 * x['mfu']:.1f}%"] for x in r["runs"]]
    std = r.get("fit_std") or {}
    fit = [[k, f"{v:.4g}", f"± {std[k]:.3g}" if k in std else "-"] for k, v in r["fit"].items()]
    o = r["optimum"]
    opt = [["fit (approach 3)", _num(o["n_opt"]), _num(o["d_opt"]), f"{o['tokens_per_param']:.1f}"],
           ["Chinchilla's rule (`llmcycle estimate compute`)", _num(o["chinchilla_n"]), _num(o["chinchilla_d"]),
            f"{o['chinchilla_tokens_per_param']:.0f}"]]
    iso = [[f"{m['budget']:.3g}", _num(m["n_opt"]) if m.get("n_opt") else "-",
            ("yes" if m["inside"] else "no (extrapolated)") if m.get("n_opt") else m.get("note", "")]
           for m in r["isoflop"]]
    parts = ["## Scaling laws\n", f"Corpus: {r.get('corpus', '-')}; {len(r['runs'])} runs in {r['seconds']:.0f} s.\n",
             md_table(["run", "N", "D (tokens)", "6ND", "held-out loss", "tokens/s", "MFU"], runs),
             "\nFit of L(N, D) = E + A / N^alpha + B / D^beta (Huber on log loss; ± bootstrap std):\n",
             md_table(["parameter", "value", "spread"], fit),
             f"\nCompute-optimal allocation for C = {o['budget']:.3g} FLOPs:\n",
             md_table(["", "N*", "D*", "tokens per parameter"], opt),
             "\nIsoFLOP minima (approach 2, a parabola in log N per budget):\n",
             md_table(["budget C", "loss-optimal N", "inside the sizes swept"], iso)]
    if r.get("heldout"):
        h = r["heldout"]
        parts.append(f"\nHeld-out check: N = {h['params']:,}, D = {h['tokens']:,} (not in the fit): predicted loss "
                     f"{h['predicted_loss']:.3f}, measured {h['measured_loss']:.3f} "
                     f"({100 * h['relative_error']:.1f}% off).\n")
    parts.append(f"\n![loss against compute]({rel}/scaling.png)\n\n![IsoFLOP profiles]({rel}/isoflop.png)\n")
    return "\n".join(parts)


STAGE: Any = register_stage(Scaling())
