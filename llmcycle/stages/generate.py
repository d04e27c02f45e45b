"""Stage ``generate``: outputs for the first rows of the recipe's data split, with one settings block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from llmcycle.core.config import StageConfig
from llmcycle.core.files import atomic_write_jsonl
from llmcycle.generation import generate
from llmcycle.generation.settings import GenerationSettings
from llmcycle.models.chat import uses_chat
from llmcycle.prompts import build_prompts
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, StageContext, register_stage


class GenerateStage(StageConfig):
    """Generate outputs for the recipe's data split (greedy unless told otherwise)."""

    generation: GenerationSettings = Field(default_factory=GenerationSettings,
                                           description="Decoding settings (llmcycle.generation).")
    batch_size: int = Field(8, ge=1, description="Inputs per generation batch.")
    n_examples: int = Field(6, ge=1, description="How many rows of the data split to generate for.")
    template: str = Field("none", description="Prompt template (llmcycle.prompts); inputs are fitted to the model's "
                          "input budget and any cut is recorded.")


class Generate(BaseStage):
    kind = "generate"
    config_cls = GenerateStage
    title = "Generated outputs"

    def writes(self, cfg: GenerateStage) -> list[str]:
        return ["predictions.jsonl", "section.md"]

    def run(self, ctx: StageContext, cfg: GenerateStage, out: Path) -> str:
        from rich.progress import Progress

        data = ctx.data
        split = ctx.data_config.split or "test"
        if split not in data:
            split = list(data.keys())[-1]
        rows = data[split].select(range(min(cfg.n_examples, len(data[split]))))
        prompts = build_prompts(cfg.template, rows, tokenizer=ctx.model.tokenizer, chat=uses_chat(ctx.model))
        with Progress(transient=True) as bar:
            task = bar.add_task(f"generating {len(rows)} outputs", total=len(rows))
            preds = generate(ctx.model, prompts.texts, cfg.generation, batch_size=cfg.batch_size,
                             max_input_tokens=prompts.summary.max_tokens, on_batch=lambda n: bar.advance(task, n))
        records = [{"input": r["input"], "prompt": b.text, "input_truncated": b.input_truncated,
                    "references": r["references"], "prediction": p} for r, b, p in zip(rows, prompts.prompts, preds)]
        atomic_write_jsonl(out / "predictions.jsonl", records)
        caveat = ""
        if ctx.model.untrained or (not ctx.incoming.produced and ctx.incoming.source == "builtin:minilm-seq2seq"):
            caveat = ("\n> Before fine-tuning, builtin:minilm-seq2seq's cross-attention is freshly initialised, so "
                      "these outputs are not yet summaries; the tune stage teaches it. Random (untrained) models "
                      "print noise.\n")
        body = md_table(["#", "reference", "model output"],
                        [[i + 1, r["references"][0] if r["references"] else "", r["prediction"]]
                         for i, r in enumerate(records)])
        return (f"## Generated outputs ({split} split, {len(records)} examples, {ctx.incoming.label})\n"
                f"{caveat}\n{body}")


STAGE: Any = register_stage(Generate())
