"""``TuneConfig``: every option of a fine-tuning run, documented once (pydantic, unknown fields are errors)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from llmcycle.core.config import DataConfig, StageConfig
from llmcycle.core.tracking import ReportTo, report_to_field
from llmcycle.models.hub import HubOptions, hub_field

Method = Literal["full", "lora", "qlora", "prompt_tuning", "selective"]


class LoraOptions(StageConfig):
    """Low-rank adapters on chosen linear layers (method ``lora`` / ``qlora``)."""

    r: int = Field(8, gt=0, description="Rank of the low-rank update (A: r x in, B: out x r).")
    alpha: float = Field(16, gt=0, description="Scaling numerator: the update is multiplied by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter's input.")
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases train: none, all, or "
                                                      "those of adapted layers only.")
    target_modules: list[str] | None = Field(
        None, min_length=1, description="Module name suffixes to adapt; default by model family (T5 q,v; BART/Llama "
        "q_proj,v_proj; GPT-2 c_attn; BERT-style query,value).")
    train_new_modules: bool = Field(
        True, description="Also train fully the modules a warm start created fresh (the cross-attention of "
        "builtin:minilm-seq2seq); they are saved with the adapter.")
    train_new_tokens: bool = Field(
        True, description="Also train the embedding rows of the tokens a warm start added to its vocabulary (the "
        "#PersonN# speaker tags of builtin:minilm-seq2seq), through peft's trainable tokens: only those rows, in "
        "every embedding matrix and in an LM head tied to one; saved with the adapter.")


class PromptTuningOptions(StageConfig):
    """Soft prompt: trainable virtual-token embeddings prepended to the input (method ``prompt_tuning``)."""

    n_virtual_tokens: int = Field(20, gt=0, description="Number of virtual tokens prepended to every input.")
    init_text: str | None = Field(None, min_length=1, description="Initialise the virtual tokens from this text's "
                                  "token embeddings (repeated to fill); None: random.")


def check_patterns(value: list[str]) -> list[str]:
    """``value`` unchanged when every item compiles as a regular expression; else a ValueError naming it."""
    for pat in value:
        try:
            re.compile(pat)
        except re.error as exc:
            raise ValueError(f"{pat!r} is not a valid regular expression ({exc})") from None
    return value


Patterns = Annotated[list[str], AfterValidator(check_patterns)]
"""A list of regular expressions, each checked to compile (errors name the field and the pattern)."""


class SelectiveOptions(StageConfig):
    """Train only parameters whose names match (method ``selective``)."""

    patterns: Patterns = Field(
        default_factory=lambda: [r"LayerNorm|layer_norm|norm|\bln_|\.ln_"], min_length=1,
        description="Regular expressions searched in parameter names; matching parameters train, the rest "
        "freeze. Every pattern must match at least one parameter.")


class MixSource(StageConfig):
    """Another task mixed into the training data (multitask fine-tuning; see ``llmcycle.tuning.multitask``)."""

    data: DataConfig = Field(..., description="Where the task's rows come from (its train split is used).")
    name: str | None = Field(None, min_length=1, description="What reports call the task; default: the source.")
    weight: float = Field(1.0, gt=0, description="Share of the mix relative to the main data's main_weight.")
    templates: list[str] = Field(["none"], min_length=1, description="Prompt templates phrasing this task.")
    target_field: str | None = Field(None, min_length=1, description="Learn this field (e.g. topic) instead of "
                                     "the references.")


class TuneConfig(StageConfig):
    """A fine-tuning run: method, data shaping, optimisation, evaluation and checkpoints."""

    method: Method = Field("lora", description="full, lora, qlora (4-bit base, CUDA only), prompt_tuning or "
                           "selective.")
    lora: LoraOptions = Field(default_factory=LoraOptions, description="Options of lora / qlora.")
    prompt_tuning: PromptTuningOptions = Field(default_factory=PromptTuningOptions,
                                               description="Options of prompt_tuning.")
    selective: SelectiveOptions = Field(default_factory=SelectiveOptions, description="Options of selective.")
    templates: list[str] = Field(["none"], min_length=1, description="Prompt templates turning rows into "
                                 "prompts; with several, row i uses template i mod n.")
    max_input_tokens: int = Field(384, gt=0, description="Prompt tokens kept (longer prompts are truncated and "
                                  "counted).")
    max_target_tokens: int = Field(64, gt=0, description="Completion tokens kept, EOS included.")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data (ignored when max_steps is set).")
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps to run; wins over epochs.")
    batch_size: int = Field(8, gt=0, description="Rows per forward pass.")
    grad_accum: int = Field(1, gt=0, description="Forward passes per optimizer step (effective batch = "
                            "batch_size x grad_accum).")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    lr_new_modules: float | None = Field(None, gt=0, description="Learning rate of freshly initialised modules "
                                         "(e.g. cross-attention of a warm start); None: learning_rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay (not on biases and norms).")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Fraction of steps of linear warmup from 0.")
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"] = Field(
        "linear", description="Learning-rate schedule after warmup.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping by global norm.")
    eval_every: int | None = Field(None, gt=0, description="Evaluate loss on the validation sample every this many "
                                   "steps; None: only at the end.")
    eval_samples: int = Field(64, gt=0, description="Validation rows used for evaluation (the first n).")
    early_stopping_patience: int | None = Field(None, gt=0, description="Stop after this many evaluations "
                                                "without a lower validation loss; needs eval_every.")
    save_every: int = Field(100, gt=0, description="Checkpoint (weights, optimizer, scheduler, RNG, data "
                            "position) every this many steps.")
    keep_checkpoints: int | None = Field(2, gt=0, description="Newest checkpoints kept; None keeps all.")
    log_every: int = Field(10, gt=0, description="Record the training loss every this many steps.")
    report_to: ReportTo = report_to_field()
    hub: HubOptions = hub_field()
    seed: int = Field(42, description="Seed for initialisation, dropout and data order.")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Mixed precision: bf16 needs a GPU that "
                                                      "supports it or a CPU (fast only with AVX-512 or AMX; a "
                                                      "warning says when it is not); fp16 needs CUDA.")
    group_by_length: bool = Field(False, description="Batch rows of similar length together (less padding).")
    mix: list[MixSource] = Field(default_factory=list, description="Other tasks mixed into the training rows "
                                 "by weight (multitask fine-tuning, against forgetting); validation stays the "
                                 "main data's.")
    main_weight: float = Field(1.0, gt=0, description="Weight of the main data in the mix (only with mix).")
    mix_size: int | None = Field(None, gt=0, description="Rows of the mixed training set; default: all rows of "
                                 "all tasks.")
    start: Literal["current", "recipe_model"] = Field(
        "current", description="In a recipe: tune the model the earlier stages produced (current), or the recipe's "
        "model afresh (recipe_model: e.g. full and LoRA fine-tuning side by side). Ignored by `llmcycle tune`.")

    @model_validator(mode="after")
    def _check(self) -> TuneConfig:
        if self.early_stopping_patience is not None and self.eval_every is None:
            raise ValueError("early_stopping_patience needs eval_every (evaluations to compare)")
        return self
