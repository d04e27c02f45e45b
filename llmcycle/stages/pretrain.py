"""Stage ``pretrain``: pre-train a model from scratch, or continue pre-training the model received on in-domain
text (domain adaptation), and hand it on.

The work is ``llmcycle.pretrain.train.pretrain``. The corpus is the recipe data's text (``text``: the inputs,
the references or both) of its train split, or ``files``; the validation split gives the in-domain held-out
loss, ``general_text`` the out-of-domain one. A causal or encoder-decoder model is handed on as weights,
labelled ``pretrained`` (scratch) or ``adapted`` (received); a masked LM built from scratch is an encoder that
cannot generate: it is saved in the stage folder and the model received is handed on unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmcycle.core.config import ModelConfig
from llmcycle.core.errors import DataError
from llmcycle.pretrain.config import PretrainConfig
from llmcycle.pretrain.data import read_text_file, row_texts
from llmcycle.pretrain.train import PretrainResult, perplexity, pretrain
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, ModelHandoff, StageContext, StageOutput, register_stage
from llmcycle.stages.tune import trainable_from


def generative(cfg: PretrainConfig) -> bool:
    """Whether the run makes a model later stages can use (all but a masked LM from scratch)."""
    return cfg.init == "received" or (cfg.architecture.config is not None and cfg.objective != "mlm") or \
        cfg.objective_for(cfg.architecture.family) != "mlm"


def corpus(ctx: StageContext, cfg: PretrainConfig) -> tuple[list[str], list[str]]:
    """(training documents, in-domain held-out documents) of the stage."""
    if cfg.files:
        texts = [doc for f in cfg.files for doc in read_text_file(f)]
        held: list[str] = []
    else:
        data = ctx.all_splits()
        if "train" not in data:
            raise DataError(f"pretrain: the data has no train split (it has {', '.join(data) or 'none'}); name "
                            "text files in files instead")
        texts = row_texts(data["train"], cfg.text)
        held = row_texts(data["validation"], cfg.text) if "validation" in data else []
    return texts, held


class Pretrain(BaseStage):
    kind = "pretrain"
    config_cls = PretrainConfig
    title = "Pre-training"

    def check(self, cfg: PretrainConfig, incoming: ModelHandoff) -> str | None:
        return trainable_from(incoming) if cfg.init == "received" else None

    def hand_on(self, cfg: PretrainConfig, incoming: ModelHandoff, folder: Path) -> ModelHandoff:
        if not generative(cfg):
            return incoming
        return ModelHandoff.saved(folder / "model", "adapted" if cfg.init == "received" else "pretrained",
                                  folder.name, "weights")

    def writes(self, cfg: PretrainConfig) -> list[str]:
        return ["checkpoints/", "model/", "pretrain_config.json", "pretrain_result.json", "loss_curve.png",
                *(["before.json"] if cfg.init == "received" else []), "section.md"]

    def plan_notes(self, cfg: PretrainConfig, incoming: ModelHandoff, model: ModelConfig) -> list[str]:
        if cfg.init == "received":
            return [f"continues pre-training {incoming.describe()}"]
        a = cfg.architecture
        return [f"builds a {a.family} model from scratch ({a.layers} layers, width {a.width}, context {a.context})"
                if a.config is None else f"builds a model from scratch with the architecture of {a.config}"]

    def run(self, ctx: StageContext, cfg: PretrainConfig, out: Path) -> StageOutput:
        texts, held = corpus(ctx, cfg)
        result = pretrain(cfg, out, texts=texts, heldout=held, loaded=ctx.model if cfg.init == "received" else None)
        what = ctx.incoming.describe() if cfg.init == "received" else "from scratch"
        return StageOutput(pretrain_section(result, what, out, ctx.rel(out)),
                           result.loaded if generative(cfg) else None)

    def glance(self, folder: Path, cfg: PretrainConfig) -> Glance:
        try:
            r = json.loads((folder / "pretrain_result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        ppl = r.get("perplexity", {})
        shown = ", ".join(f"{k} {v:,.1f}" for k, v in ppl.items())
        return Glance(figures=[[f"measured: {folder.name} ({r['objective']}, {r['params']:,} parameters)",
                                f"{r['tokens']:,} tokens, {r['tokens_per_s']:,.0f} tokens/s, MFU {100 * r['mfu']:.1f}%",
                                f"held-out perplexity {shown}" if shown else ""]])


def pretrain_section(r: PretrainResult, source: str, out: Path, rel: str) -> str:
    """Sizes, tokens, efficiency, held-out loss and perplexity (before and after) and the loss curve."""
    rows = [["model", source], ["objective", r.objective], ["family", r.family],
            ["parameters N", f"{r.params:,} ({r.embedding_params:,} in the embeddings)"],
            ["tokens trained D", f"{r.tokens:,} in {r.steps} steps of {r.tokens // max(r.steps, 1):,} "
             f"({r.epochs:.2f} passes over {r.corpus_tokens:,} corpus tokens, blocks of {r.block_size})"],
            ["compute 6ND", f"{r.flops:.3g} FLOPs"], ["training time", f"{r.seconds:.1f} s"],
            ["throughput", f"{r.tokens_per_s:,.0f} tokens/s"],
            ["model FLOPs utilisation", f"{100 * r.mfu:.1f}% of a measured matmul peak of {r.peak_flops / 1e9:.1f} "
             "GFLOP/s"],
            ["saved to", f"`{r.model_dir}`"]]
    if r.resumed_from:
        rows.append(["resumed from", f"`{r.resumed_from}`"])
    rows.extend([note, ""] for note in r.notes)
    held = [[name, f"{r.before[name]:.3f} ({perplexity(r.before[name]):,.1f})" if r.before else "-",
             f"{loss:.3f} ({perplexity(loss):,.1f})"] for name, loss in r.after.items()]
    parts = [f"## Pre-training: {r.objective} ({r.init})\n", md_table(["", "value"], rows)]
    if held:
        parts += ["\nHeld-out loss per predicted token, nats (perplexity):\n",
                  md_table(["text", "before" if r.init == "received" else "at initialisation", "after"], held)]
    if (out / "loss_curve.png").is_file():
        parts.append(f"\n![pre-training loss]({rel}/loss_curve.png)\n")
    return "\n".join(parts)


STAGE: Any = register_stage(Pretrain())
