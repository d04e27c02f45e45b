"""``PretrainConfig``: every option of a pre-training run, documented once (pydantic, unknown fields are errors)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmcycle.core.config import StageConfig
from llmcycle.core.tracking import ReportTo, report_to_field
from llmcycle.models.hub import HubOptions, hub_field

Family = Literal["gpt2", "llama", "bert", "t5"]
Objective = Literal["clm", "mlm", "span"]

DEFAULT_OBJECTIVE: dict[str, Objective] = {"gpt2": "clm", "llama": "clm", "bert": "mlm", "t5": "span"}
"""The objective a family is pre-trained with when ``objective`` is not set."""


class ArchitectureOptions(StageConfig):
    """A from-scratch model: a bundled architecture of a real family, scaled down (or up) by fields."""

    family: Family = Field("gpt2", description="gpt2 or llama (causal LM), bert (masked LM), t5 (span "
                           "corruption, encoder-decoder).")
    layers: int = Field(4, gt=0, description="Transformer blocks (T5: in the encoder and in the decoder each).")
    width: int = Field(256, gt=0, description="Hidden size d_model; must be a multiple of heads.")
    heads: int = Field(4, gt=0, description="Attention heads (llama: query heads).")
    kv_heads: int | None = Field(None, gt=0, description="llama: key/value heads (grouped-query attention); "
                                 "default: heads.")
    ffn_mult: float = Field(4.0, gt=0, description="Feed-forward size as a multiple of width.")
    context: int = Field(256, gt=0, description="Longest sequence the model takes (positions); training blocks "
                         "are at most this long.")
    config: str | None = Field(None, min_length=1, description="Take the architecture from a transformers config "
                               "instead (a folder or config.json, or a hub id; bundled ones work offline); the "
                               "fields above are then ignored, the vocabulary is the tokenizer's.")

    @model_validator(mode="after")
    def _check(self) -> ArchitectureOptions:
        if self.config is None and self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        return self


class PretrainConfig(StageConfig):
    """A pre-training run: from scratch (``init: scratch``) or continued on the model received (domain
    adaptation, ``init: received``), on documents packed into fixed blocks."""

    init: Literal["scratch", "received"] = Field(
        "scratch", description="scratch: build a new model from `architecture` (random, seeded); received: continue "
        "pre-training the model the stage receives (domain adaptation; an encoder-decoder warm start such as "
        "builtin:minilm-seq2seq trains its encoder with mlm).")
    objective: Objective | None = Field(
        None, description="clm (next token), mlm (masked tokens, BERT) or span (T5 span corruption); default: the "
        "family's own (gpt2/llama clm, bert mlm, t5 span; a received causal model clm, encoder-decoder span, or "
        "mlm for a BERT-style warm start).")
    architecture: ArchitectureOptions = Field(default_factory=ArchitectureOptions,
                                              description="The model built with init: scratch.")
    tokenizer: str | None = Field(
        None, min_length=1, description="A tokenizer folder (e.g. from `llmcycle tokenizer train`) or a model source "
        "whose tokenizer to use (scratch); default: the builtin offline tokenizer. init: received always uses the "
        "received model's tokenizer.")
    text: Literal["input", "references", "both"] = Field(
        "input", description="Which text of the data's rows is the corpus: the inputs (DialogSum's dialogues), the "
        "references (summaries) or both.")
    files: list[str] = Field(default_factory=list, description="Text files to pre-train on instead of the data "
                             "(.txt: one document per blank-line-separated paragraph; .jsonl: a `text` field).")
    general_text: str | None = Field(
        "builtin:python-docs", description="Held-out text outside the domain whose perplexity is reported beside the "
        "in-domain one (a .txt file, or builtin:python-docs: the Python documentation topics shipped with Python); "
        "None: in-domain only.")
    block_size: int | None = Field(None, gt=1, description="Tokens per packed training block; default: the "
                                   "architecture's context (received: 256, at most the model's positions).")
    max_tokens: int | None = Field(None, gt=0, description="Token budget D: train on this many tokens (rounded up "
                                   "to whole optimizer steps); wins over epochs.")
    max_steps: int | None = Field(None, gt=0, description="Optimizer steps to run; wins over max_tokens and epochs.")
    epochs: float = Field(1.0, gt=0, description="Passes over the packed corpus (when neither max_steps nor "
                          "max_tokens is set).")
    batch_size: int = Field(16, gt=0, description="Blocks per forward pass.")
    grad_accum: int = Field(1, gt=0, description="Forward passes per optimizer step.")
    learning_rate: float = Field(1e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decoupled weight decay (not on biases and norms).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of steps of linear warmup from 0.")
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup", "warmup_stable_decay"] = Field(
        "cosine", description="Learning-rate schedule after warmup (cosine to 0 at the last step, as Chinchilla "
        "matches the schedule to the token budget).")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping by global norm.")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="mlm: share of tokens masked (80% [MASK], 10% "
                                   "random, 10% kept).")
    noise_density: float = Field(0.15, gt=0, lt=1, description="span: share of tokens corrupted.")
    mean_span: float = Field(3.0, ge=1, description="span: mean length of a corrupted span.")
    head_steps: int = Field(0, ge=0, description="init: received with a fresh LM head (a BERT encoder has no MLM "
                            "head): train only the head this many steps first, so the 'before' perplexity measures "
                            "the received encoder, not a random head.")
    eval_every: int | None = Field(None, gt=0, description="Held-out loss every this many steps; None: at the start "
                                   "and the end only.")
    eval_blocks: int = Field(32, gt=0, description="Held-out blocks evaluated (the first n of the validation "
                             "split's packed blocks, and of the general text).")
    save_every: int = Field(200, gt=0, description="Checkpoint (weights, optimizer, scheduler, RNG, data position) "
                            "every this many steps.")
    keep_checkpoints: int | None = Field(1, gt=0, description="Newest checkpoints kept; None keeps all.")
    log_every: int = Field(10, gt=0, description="Record the training loss every this many steps.")
    report_to: ReportTo = report_to_field()
    hub: HubOptions = hub_field()
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Mixed precision: bf16 needs a GPU that "
                                                      "supports it or a CPU (fast only with AVX-512 or AMX; a "
                                                      "warning says when it is not); fp16 needs CUDA.")
    seed: int = Field(42, description="Seed for initialisation, masking and data order.")

    def objective_for(self, family: str, kind: str | None = None) -> Objective:
        """The objective this run trains: the set one, else the family's (or the received kind's) own."""
        if self.objective:
            return self.objective
        if kind == "causal":
            return "clm"
        if family in DEFAULT_OBJECTIVE:
            return DEFAULT_OBJECTIVE[family]
        return "span" if kind == "seq2seq" else "clm"
