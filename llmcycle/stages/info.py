"""Stage ``info``: the model card (kind, family, shape, parameters, memory), optionally a text walked
through the model component by component."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from llmcycle.core.config import StageConfig
from llmcycle.core.files import atomic_write_json
from llmcycle.models.info import describe
from llmcycle.models.trace import trace
from llmcycle.report import md_escape, md_table
from llmcycle.stages.base import BaseStage, StageContext, register_stage


class InfoStage(StageConfig):
    """The model card (kind, family, shape, parameters, memory)."""

    trace: str | None = Field(None, description="Also walk this text through the model, component by component.")


class Info(BaseStage):
    kind = "info"
    config_cls = InfoStage
    title = "Model card"

    def writes(self, cfg: InfoStage) -> list[str]:
        return ["model_card.json", *(["trace.json"] if cfg.trace else []), "section.md"]

    def run(self, ctx: StageContext, cfg: InfoStage, out: Path) -> str:
        card = describe(ctx.model, dtype=ctx.model_config.dtype)
        atomic_write_json(out / "model_card.json", card.to_dict())
        section = f"## Model card\n\n{md_table(['property', 'value'], [list(r) for r in card.rows()])}"
        if cfg.trace:
            steps = trace(ctx.model, cfg.trace)
            atomic_write_json(out / "trace.json", [{"title": s.title, "lines": s.lines} for s in steps])
            walk = "\n".join(f"- **{s.title}**: " + " / ".join(md_escape(x) for x in s.lines) for s in steps)
            section += f"\n### Walking a text through the model\n\nInput: `{cfg.trace}`\n\n{walk}\n"
        return section


STAGE: Any = register_stage(Info())
