"""Stage ``estimate``: memory and compute estimates for fine-tuning the model it receives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import LLMCycleError
from llmcycle.core.files import atomic_write_json
from llmcycle.estimate import ArchSpec, estimate_memory, plan_training
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, StageContext, register_stage


class EstimateStage(StageConfig):
    """Memory and compute estimates for fine-tuning the recipe's model."""

    batch_size: int = Field(8, ge=1, description="Training batch size for the activation estimate.")
    input_tokens: int = Field(384, ge=1, description="Input (encoder / prompt) tokens per example.")
    output_tokens: int = Field(64, ge=0, description="Output (decoder / completion) tokens per example.")
    dtype: str = Field("fp32", description="fp32 | fp16 | bf16 | int8 | int4.")
    gradient_checkpointing: bool = Field(False, description="Keep only layer inputs; recompute in backward.")
    train_tokens: float = Field(1e6, gt=0, description="Tokens seen in training, for the compute estimate.")


class Estimate(BaseStage):
    kind = "estimate"
    config_cls = EstimateStage
    title = "Memory and compute estimates"

    def writes(self, cfg: EstimateStage) -> list[str]:
        return ["estimates.json", "section.md"]

    def run(self, ctx: StageContext, cfg: EstimateStage, out: Path) -> str:
        model = ctx.model.model
        n_params = sum(p.numel() for p in model.parameters())
        try:
            target: Any = ArchSpec.from_config(model.config)
        except LLMCycleError:
            target = n_params  # a family the estimator cannot read: rule-of-thumb activations only
        shape = dict(batch_size=cfg.batch_size, input_len=cfg.input_tokens, output_len=cfg.output_tokens,
                     grad_checkpointing=cfg.gradient_checkpointing)
        estimates = {
            "inference": estimate_memory(target, dtype=cfg.dtype, mode="inference"),
            "training, rule of thumb": estimate_memory(n_params, dtype=cfg.dtype, mode="training"),
            f"training, batch {cfg.batch_size} x {cfg.input_tokens}/{cfg.output_tokens} tokens":
                estimate_memory(target, dtype=cfg.dtype, mode="training", **shape)
                if not isinstance(target, int) else None,
        }
        plan = plan_training(n_params, cfg.train_tokens)
        atomic_write_json(out / "estimates.json", {"memory": {k: v.to_dict() for k, v in estimates.items() if v},
                                                   "compute": plan.__dict__})
        rows = [[k, f"{v.weights / 1e9:.3f}", f"{(v.gradients + v.optimizer_states) / 1e9:.3f}",
                 f"{v.activations / 1e9:.3f}", f"{v.total / 1e9:.3f}"] for k, v in estimates.items() if v]
        mem = md_table(["memory", "weights GB", "grads + Adam GB", "activations GB", "total GB"], rows)
        return (f"## Memory and compute estimates ({cfg.dtype})\n\n{mem}\n"
                f"{md_table(['compute', 'value'], [list(r) for r in plan.rows()])}")

    def glance(self, folder: Path, cfg: EstimateStage) -> Glance:
        try:
            est = json.loads((folder / "estimates.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        rows = [[f"estimate: {label}", f"{m['total'] / 2**20:,.0f} MB", ""]
                for label, m in est.get("memory", {}).items()]
        c = est.get("compute") or {}
        if c.get("flops"):
            rows.append(["estimate: training compute", f"{c['flops']:.3g} FLOPs ({c.get('pf_days', 0):.2g} "
                                                        "petaflop/s-days)", ""])
        return Glance(figures=rows)


STAGE: Any = register_stage(Estimate())
