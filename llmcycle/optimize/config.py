"""``OptimizeConfig``: which deployment optimisations to apply and how to measure them (documented once)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from llmcycle.core.config import StageConfig
from llmcycle.generation.settings import GenerationSettings
from llmcycle.models.hub import HubOptions, hub_field
from llmcycle.tuning.config import Patterns, TuneConfig

Method = Literal["fp16", "bf16", "int8", "bnb8", "bnb4", "prune", "distil", "merge"]
METHODS: tuple[str, ...] = ("fp16", "bf16", "int8", "bnb8", "bnb4", "prune", "distil", "merge")


class PruneOptions(StageConfig):
    """Magnitude pruning of linear layers (method ``prune``)."""

    sparsity: float = Field(0.3, gt=0, lt=1, description="Share of the selected weights set to zero.")
    scope: Literal["global", "layer"] = Field(
        "global", description="global: the smallest weights across all selected layers (layers end up with "
        "different sparsities); layer: the same sparsity in every layer.")
    structured: bool = Field(False, description="Remove whole output rows (neurons) of each layer by L2 norm instead "
                             "of single weights (always per layer).")
    exclude: Patterns = Field(
        default_factory=lambda: [r"lm_head|cls\.predictions|embed|shared|classifier|score"],
        description="Regular expressions searched in module names: matching linear layers are not pruned (the "
        "output head is often tied to the embeddings).")


DISTIL_TRAIN = {"method": "full", "max_steps": 200, "batch_size": 8, "learning_rate": 3e-4, "save_every": 50,
                "log_every": 10}
"""The student's training defaults; ``distil.train`` fields given (``--set distil.train.max_steps=300``) go over them."""


def _distil_tune_default() -> TuneConfig:
    return TuneConfig(**DISTIL_TRAIN)


class DistilOptions(StageConfig):
    """Knowledge distillation into a student with fewer decoder layers (method ``distil``)."""

    decoder_layers: int | None = Field(None, ge=1, description="Decoder layers the student keeps (default: half "
                                       "the teacher's, rounded up); the layers kept are spread evenly, first "
                                       "and last included, and start from the teacher's weights.")
    layers: list[int] | None = Field(None, min_length=1, description="Exactly which teacher decoder layers to keep "
                                     "(0-based, ascending); overrides decoder_layers.")
    targets: Literal["soft", "generated"] = Field(
        "soft", description="soft: match the teacher's token distributions (temperature, alpha); generated: train "
        "on the teacher's own greedy summaries of the training inputs (sequence-level distillation).")
    temperature: float = Field(2.0, gt=0, description="Softening temperature of both distributions (soft targets); "
                               "the KL term is scaled by temperature squared.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the soft-target KL loss; 1 - alpha weighs the "
                         "cross-entropy on the reference labels.")
    train: TuneConfig = Field(default_factory=_distil_tune_default,
                              description="How the student trains (a tune config; method must be full).")

    @field_validator("layers")
    @classmethod
    def _ascending(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (sorted(set(value)) != value or value[0] < 0):
            raise ValueError("must be distinct, ascending, non-negative layer indices")
        return value

    @field_validator("train", mode="before")
    @classmethod
    def _defaults(cls, value: Any) -> Any:
        """A partial ``train`` block keeps the distillation defaults (method full, 200 steps, ...) it does not set."""
        return DISTIL_TRAIN | value if isinstance(value, dict) else value

    @field_validator("train")
    @classmethod
    def _full(cls, value: TuneConfig) -> TuneConfig:
        if value.method != "full":
            raise ValueError("train.method must be full (the student trains all its weights)")
        return value


class MeasureOptions(StageConfig):
    """How every variant is measured: the same inputs, the same decoding, the same metric."""

    n: int = Field(32, ge=1, description="Evaluation rows (the first n of the split) generated for ROUGE and speed.")
    batch_size: int = Field(8, ge=1, description="Inputs per generation batch for the throughput measurement.")
    latency_n: int = Field(4, ge=0, description="Inputs generated one at a time for the per-request latency "
                           "(0: skip).")
    template: str = Field("none", description="Prompt template applied to each row (llmcycle.prompts).")
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(max_new_tokens=60),
        description="Decoding settings used for every variant (greedy, 60 new tokens by default).")


class OptimizeConfig(StageConfig):
    """Deployment optimisations, each measured against the unoptimised model in one table."""

    methods: list[Method] = Field(
        default_factory=lambda: ["int8"], min_length=1,
        description="Variants to build, each from the unoptimised model: fp16 / bf16 (cast), int8 (dynamic int8 linear "
        "layers, embeddings weight-only, saved as safetensors; PyTorch's dynamic kernels on the CPU, torchao on a "
        "GPU), bnb8 / bnb4 (bitsandbytes loading; CUDA only), prune, distil, merge (fold a LoRA adapter into its base).")
    prune: PruneOptions = Field(default_factory=PruneOptions, description="Settings of method prune.")
    distil: DistilOptions = Field(default_factory=DistilOptions, description="Settings of method distil.")
    measure: MeasureOptions = Field(default_factory=MeasureOptions, description="How variants are measured.")
    save: bool = Field(True, description="Save each variant under <run>/<method>/ so it can be loaded and served.")
    hand_on: Method | None = Field(
        None, description="In a recipe, the variant the stages after this one receive (e.g. int8, so serve serves "
        "what would be deployed); one of methods. None: they receive the model this stage started from. A merge "
        "with nothing to merge hands on that model too.")
    hub: HubOptions = hub_field()

    @property
    def pushed(self) -> str | None:
        """The variant ``hub.push`` publishes: ``hand_on``, else the only method (None: no push)."""
        if not self.hub.push:
            return None
        return self.hand_on or (self.methods[0] if len(self.methods) == 1 else None)

    @model_validator(mode="after")
    def _distinct(self) -> OptimizeConfig:
        seen = [m for i, m in enumerate(self.methods) if m in self.methods[:i]]
        if seen:
            raise ValueError(f"methods: {seen[0]} listed twice")
        if self.hand_on is not None and self.hand_on not in self.methods:
            raise ValueError(f"hand_on: {self.hand_on} is not one of methods {self.methods}")
        if self.hand_on is not None and not self.save:
            raise ValueError("hand_on: a variant can only be handed on when it is saved; set save: true")
        if self.hub.push and not self.save:
            raise ValueError("hub.push: a variant can only be pushed when it is saved; set save: true")
        if self.hub.push and self.pushed is None:
            raise ValueError(f"hub.push: several variants are built ({', '.join(self.methods)}); set hand_on to the "
                             "one to push")
        return self
