"""Stage ``tune``: fine-tune the model it receives (full, LoRA, prompt tuning, selective) and hand it on.

The training is ``llmcycle.tuning.train`` (the Hugging Face Trainer, exact resume). A LoRA adapter
it receives is merged into its base first, so adapters trained one after another stack; a
quantised model or a prompt-tuning adapter cannot be trained on (the chain fails before any work).
It hands on the adapter (lora, prompt tuning) or the weights (full, selective) it saved, labelled
``tuned-<method>``. ``start: recipe_model`` starts from the recipe's model instead of the model
received, so several methods can be tuned side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmcycle.core.config import ModelConfig
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, ModelHandoff, StageContext, StageOutput, register_stage
from llmcycle.stages.memory import training_memory_note
from llmcycle.tuning import train
from llmcycle.tuning.config import TuneConfig
from llmcycle.tuning.data import TruncationReport

PEFT_METHODS = {"lora": "lora", "qlora": "lora", "prompt_tuning": "prompt_tuning"}


def trainable_from(incoming: ModelHandoff) -> str | None:
    """Why a model cannot be trained on (quantised, or a prompt-tuning adapter); None when it can."""
    if incoming.form == "quantized":
        return "a quantised model is for inference only; train before optimising, or hand on another variant"
    if incoming.form == "adapter" and incoming.adapter_type not in (None, "lora"):
        return (f"a {incoming.adapter_type} adapter cannot be merged into its base (its virtual tokens are inputs, "
                "not weights), so nothing can be trained on top of it")
    return None


class Tune(BaseStage):
    kind = "tune"
    config_cls = TuneConfig
    title = "Fine-tuning"

    def receives(self, cfg: TuneConfig, current: ModelHandoff, history: list[ModelHandoff]) -> ModelHandoff:
        return history[0] if cfg.start == "recipe_model" else current

    def check(self, cfg: TuneConfig, incoming: ModelHandoff) -> str | None:
        return trainable_from(incoming)

    def hand_on(self, cfg: TuneConfig, incoming: ModelHandoff, folder: Path) -> ModelHandoff:
        peft = PEFT_METHODS.get(cfg.method)
        return ModelHandoff.saved(folder / "model", f"tuned-{cfg.method}", folder.name,
                                  "adapter" if peft else "weights", peft)

    def writes(self, cfg: TuneConfig) -> list[str]:
        return ["checkpoints/", "model/", "tune_config.json", "tune_result.json", "loss_curve.png", "section.md"]

    def plan_notes(self, cfg: TuneConfig, incoming: ModelHandoff, model: ModelConfig) -> list[str]:
        return [training_memory_note(model, cfg.method, cfg.batch_size, cfg.max_input_tokens, cfg.max_target_tokens,
                                     cfg.precision, lora_r=cfg.lora.r)]

    def run(self, ctx: StageContext, cfg: TuneConfig, out: Path) -> StageOutput:
        data = ctx.all_splits()  # the recipe may read one split for evaluation: training needs its own
        base = ctx.model
        result = train(base, data, cfg, out)
        return StageOutput(tune_section(result, ctx.incoming.describe(), out, ctx.rel(out)), result.loaded)

    def glance(self, folder: Path, cfg: TuneConfig) -> Glance:
        try:
            t = json.loads((folder / "tune_result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        peak = t.get("peak_rss_mb")
        return Glance(figures=[[f"measured: {folder.name} ({t['method']}, {t['steps']} steps)",
                                f"{t['seconds']:.1f} s" + (f", process peak RSS {peak:,.0f} MB" if peak else ""),
                                f"{t['trainable']:,} of {t['total']:,} parameters trained ({t['pct']:.2f}%)"]])


def tune_section(result: Any, source: str, out_dir: Path, rel: str) -> str:
    """Parameters trained, steps, time, losses, truncation and the loss curve."""
    last_train = result.train_loss[-1][1] if result.train_loss else None
    last_eval = result.eval_loss[-1][1] if result.eval_loss else None
    rows = [["model", source], ["method", result.method],
            ["trainable parameters", f"{result.trainable:,} of {result.total:,} ({result.pct:.2f}%)"],
            ["optimizer steps", result.steps], ["training time", f"{result.seconds:.1f} s"],
            ["last training loss", f"{last_train:.4f}" if last_train is not None else "-"],
            ["last validation loss", f"{last_eval:.4f}" if last_eval is not None else "-"],
            ["saved to", f"`{result.model_dir}`"]]
    if result.resumed_from:
        rows.append(["resumed from", f"`{result.resumed_from}`"])
    if result.new_modules:
        rows.append(["fresh modules trained fully", ", ".join(result.new_modules)])
    rows.append(["truncation", TruncationReport(**result.truncation).summary()])
    parts = [f"## Fine-tuning: {result.method}\n", md_table(["", "value"], rows)]
    if (out_dir / "loss_curve.png").is_file():
        parts.append(f"\n![loss curve]({rel}/loss_curve.png)\n")
    return "\n".join(parts)


STAGE: Any = register_stage(Tune())
