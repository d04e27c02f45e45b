"""Recipes: a YAML file naming the model, the data and an ordered list of stages.

```yaml
name: quickstart
model: {source: builtin:minilm-seq2seq}
data: {source: builtin:dialogues, split: test, n: 6}
stages:
  - info: {}
  - estimate: {batch_size: 8, input_tokens: 384, output_tokens: 64}
  - generate: {max_new_tokens: 48}
```

Each stage's settings are validated by its own config class (``STAGE_CONFIGS``); errors name the
path (``stages[2].generate.max_new_tokens``). ``--set a.b=value`` overrides any field. The
recipe names shipped with the package (``llmcycle/recipes/*.yaml``) can be used by name.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from llmcycle.alignment.align import AlignConfig
from llmcycle.config import ConfigError, DataConfig, ModelConfig, StageConfig, load_yaml
from llmcycle.evaluation.evaluate import EvaluateConfig
from llmcycle.generation.settings import GenerationSettings
from llmcycle.optimize.config import OptimizeConfig
from llmcycle.serving.smoke import SmokeConfig
from llmcycle.prompts.lab import PromptLabConfig
from llmcycle.tuning.config import TuneConfig


class InfoStage(StageConfig):
    """The model card (kind, family, shape, parameters, memory)."""

    trace: str | None = Field(None, description="Also walk this text through the model, component by component.")


class EstimateStage(StageConfig):
    """Memory and compute estimates for fine-tuning the recipe's model."""

    batch_size: int = Field(8, ge=1, description="Training batch size for the activation estimate.")
    input_tokens: int = Field(384, ge=1, description="Input (encoder / prompt) tokens per example.")
    output_tokens: int = Field(64, ge=0, description="Output (decoder / completion) tokens per example.")
    dtype: str = Field("fp32", description="fp32 | fp16 | bf16 | int8 | int4.")
    gradient_checkpointing: bool = Field(False, description="Keep only layer inputs; recompute in backward.")
    train_tokens: float = Field(1e6, gt=0, description="Tokens seen in training, for the compute estimate.")


class GenerateStage(GenerationSettings):
    """Generate outputs for the recipe's data split (greedy unless told otherwise)."""

    batch_size: int = Field(8, ge=1, description="Inputs per generation batch.")
    n_examples: int = Field(6, ge=1, description="How many rows of the data split to generate for.")
    template: str = Field("none", description="Prompt template (llmcycle.prompts); inputs are fitted to the model's "
                          "input budget and any cut is recorded.")


STAGE_CONFIGS: dict[str, type[StageConfig]] = {"info": InfoStage, "estimate": EstimateStage,
                                               "prompt_lab": PromptLabConfig, "generate": GenerateStage,
                                               "tune": TuneConfig, "align": AlignConfig,
                                               "evaluate": EvaluateConfig, "optimize": OptimizeConfig,
                                               "serve": SmokeConfig}
"""Stage kinds a recipe may list, in the order the lifecycle usually runs them."""


class Recipe(StageConfig):
    """A whole lifecycle run."""

    name: str = Field("run", pattern=r"^[\w.\-]+$", description="Run name; the run directory is <name>-<timestamp>.")
    model: ModelConfig = Field(..., description="The model every stage starts from (required: a recipe names its "
                               "model, e.g. model: {source: builtin:minilm-seq2seq}).")
    data: DataConfig = Field(default_factory=DataConfig, description="The data every stage reads.")
    runs_dir: str = Field("runs", description="Where run directories are created.")
    stages: list[dict[str, Any]] = Field(default_factory=list, description="Ordered stages: [{kind: settings}].")

    @field_validator("stages")
    @classmethod
    def _stages(cls, stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for i, entry in enumerate(stages):
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(f"stages[{i}] must be a mapping with one key, the stage kind, e.g. '- info: {{}}'")
            (kind, settings), = entry.items()
            if kind not in STAGE_CONFIGS:
                raise ValueError(f"stages[{i}]: unknown stage {kind!r}; valid: {', '.join(STAGE_CONFIGS)}")
            cfg = STAGE_CONFIGS[kind].from_dict(settings or {}, where=f"stages[{i}].{kind}")
            out.append({kind: cfg.model_dump()})
        return out

    def stage_configs(self) -> list[tuple[str, StageConfig]]:
        """(kind, validated config) for each stage, in order."""
        return [(k, STAGE_CONFIGS[k].model_validate(v)) for e in self.stages for k, v in e.items()]


def builtin_recipes() -> list[str]:
    folder = resources.files("llmcycle") / "recipes"
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML); stage fields by kind (``generate.max_new_tokens``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set model.source=builtin:tiny-t5")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw else ""
        parts = key.strip().split(".")
        stage = next((e for e in data.get("stages", []) if isinstance(e, dict) and parts[0] in e), None)
        target = stage if stage is not None else data
        for p in parts[:-1]:
            if target.get(p) is None:
                target[p] = {}
            target = target[p]
            if not isinstance(target, dict):
                raise ConfigError(f"--set {key}: {p} is not a mapping")
        target[parts[-1]] = value
    return data


def load_recipe(source: str | None = None, overrides: list[str] | None = None) -> Recipe:
    """A recipe from a YAML path or a shipped name (default: ``quickstart``), with overrides applied."""
    source = source or "quickstart"
    path = Path(source)
    if not path.is_file():
        if source in builtin_recipes():
            path = Path(str(resources.files("llmcycle") / "recipes" / f"{source}.yaml"))
        else:
            raise ConfigError(f"no recipe file {source!r}; shipped recipes: {', '.join(builtin_recipes())}")
    data = apply_overrides(load_yaml(path), overrides or [])
    return Recipe.from_dict(data, where=str(path))
