"""The stage contract: what one lifecycle step is, what it receives and hands on, and the registry.

A stage kind is one module under ``llmcycle.stages`` (or a user's own) that registers one object
satisfying ``Stage``:

```python
from llmcycle.stages import BaseStage, register_stage

class EchoStage(BaseStage):
    kind = "echo"
    config_cls = EchoConfig          # a StageConfig: every field documented once
    title = "Echo"

    def run(self, ctx, cfg, out):    # writes into out/, returns its report section (Markdown)
        ...

register_stage(EchoStage())
```

That one object is the recipe entry (``- echo: {...}``, validated by ``config_cls``), the CLI
command's work (every stage command is a one-stage recipe) and the report section. What flows
from one stage to the next is one ``ModelHandoff``: ``hand_on`` says, from the config alone, what a
stage hands on, so ``llmcycle plan`` and a resumed run know it without loading anything, and
``check`` says why a stage cannot start from what it receives (the chain then fails before any
work, naming both stages). The runner and the report have no ``kind ==`` checks: they ask the stage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from llmcycle.core.config import DataConfig, ModelConfig, StageConfig
from llmcycle.core.errors import ConfigError
from llmcycle.data import load_data_from_config
from llmcycle.models import load_model

log = logging.getLogger("llmcycle")

Form = Literal["weights", "adapter", "quantized"]
"""What a handed-on model is: a full set of weights (the recipe's model, a full fine-tune, a merged or pruned
model), a PEFT adapter on a base (``adapter_type`` says which), or a quantised model (inference only)."""


@dataclass(frozen=True)
class ModelHandoff:
    """The model one stage hands to the next: where to load it from and what it is.

    ``source`` is what ``llmcycle.models.load_model`` reads (a hub id, ``builtin:NAME`` or a saved
    folder); ``label`` is its name in the report (``base``, ``tuned-lora``, ``aligned-ppo``, ``int8``).
    """

    source: str
    label: str = "base"
    form: Form = "weights"
    adapter_type: str | None = None  # form "adapter": "lora" or "prompt_tuning"
    stage: str | None = None  # the stage folder that produced it; None: the recipe's own model
    adapter: str | None = None  # the recipe's model.adapter (only for the recipe's own model)
    dtype: str | None = None  # a dtype the model must be loaded in (fp16/bf16 casts); None: the recipe's

    @classmethod
    def from_recipe(cls, model: ModelConfig) -> ModelHandoff:
        """The recipe's own model (``model:``), labelled ``base``."""
        if model.adapter:
            return cls(model.source, "base", "adapter", adapter_type(model.adapter) or "lora", adapter=model.adapter)
        kind = adapter_type(model.source)
        if kind is not None:  # the source is itself an adapter folder (it names its base)
            return cls(model.source, "base", "adapter", kind)
        return cls(model.source, "base")

    @classmethod
    def saved(cls, folder: Path, label: str, stage: str, form: Form = "weights",
              adapter_type: str | None = None, dtype: str | None = None) -> ModelHandoff:
        """A model a stage saves to ``folder`` (absolute, so the hand-off survives another working directory)."""
        return cls(str(Path(folder).resolve()), label, form, adapter_type if form == "adapter" else None, stage,
                   dtype=dtype)

    @property
    def produced(self) -> bool:
        """Whether a stage made it (False for the recipe's own model)."""
        return self.stage is not None

    @property
    def what(self) -> str:
        """``weights``, ``quantised weights`` or ``lora adapter``."""
        return {"weights": "weights", "quantized": "quantised weights"}.get(
            self.form, f"{(self.adapter_type or 'peft').replace('_', ' ')} adapter")

    def describe(self) -> str:
        """``tuned-lora (lora adapter, from 05-tune)``: one phrase for plans and errors."""
        where = f"from {self.stage}" if self.stage else f"the recipe's model {self.source}"
        return f"{self.label} ({self.what}, {where})"

    def load(self, model: ModelConfig) -> Any:
        """The model, loaded with the recipe's dtype and device (a quantised model stays on the CPU)."""
        if not self.produced:
            return load_model(model.source, weights=model.weights, dtype=model.dtype, device=model.device,
                              revision=model.revision, adapter=model.adapter, chat=model.chat)
        if self.form == "quantized":
            return load_model(self.source, chat=model.chat)
        return load_model(self.source, dtype=self.dtype or model.dtype, device=model.device, chat=model.chat)


def adapter_type(path: str | Path) -> str | None:
    """``lora`` / ``prompt_tuning`` / ... for a PEFT adapter folder, None when ``path`` is not one."""
    config = Path(path).expanduser() / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("peft_type") or "lora"
    except (OSError, ValueError):
        return "lora"
    return str(kind).rsplit(".", 1)[-1].lower()


@dataclass
class Glance:
    """A stage's rows in the report's first section, "the lifecycle at a glance".

    ``models``: ``[model, measured in, ROUGE-1, change (points), toxicity, size MB, tokens/s]`` rows;
    ``lines``: sentences (the serving check's verdict); ``figures``: ``[what, figure, note]`` rows of
    the estimates-and-measurements table.
    """

    models: list[list[str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    figures: list[list[str]] = field(default_factory=list)


class StageContext:
    """What a running stage gets: the recipe's model and data settings, what it receives, and loaders.

    The runner makes one per stage. ``model`` loads what the stage receives once (or reuses what the
    stage before left in memory); ``data`` is the recipe's data (the split it names, or all splits).
    """

    def __init__(self, model_config: ModelConfig, data_config: DataConfig, incoming: ModelHandoff,
                 history: list[ModelHandoff], name: str, run_path: Path,
                 progress: Callable[[str], None] | None = None, loaded: Any = None, data: Any = None,
                 data_loader: Callable[[], Any] | None = None) -> None:
        self.model_config = model_config
        self.data_config = data_config
        self.incoming = incoming
        self.history = history  # every model handed on so far, the recipe's first
        self.name = name
        self.run_path = run_path
        self.progress = progress or (lambda msg: log.info(msg))
        self._loaded = loaded
        self._data = data
        self._data_loader = data_loader

    @property
    def model(self) -> Any:
        """The model this stage received (loaded on first use)."""
        if self._loaded is None:
            self.progress(f"loading {self.incoming.describe()}")
            self._loaded = self.load(self.incoming)
        return self._loaded

    @property
    def has_loaded_model(self) -> bool:
        return self._loaded is not None

    def load(self, handoff: ModelHandoff) -> Any:
        """A fresh copy of any handed-on model (the recipe's dtype and device)."""
        return handoff.load(self.model_config)

    @property
    def data(self) -> Any:
        """The recipe's data as a ``DatasetDict`` (only the split ``data.split`` names, when it names one)."""
        if self._data is None:
            if self._data_loader is not None:
                self._data = self._data_loader()
            else:
                self.progress(f"loading data {self.data_config.source}")
                self._data = load_data_from_config(self.data_config)
        return self._data

    def eval_rows(self) -> Any:
        """The rows stages evaluate on: the recipe's split (default test; else the last split there is)."""
        data = self.data
        split = self.data_config.split or "test"
        return data[split] if split in data else data[list(data.keys())[-1]]

    def all_splits(self) -> Any:
        """Every split of the recipe's data (training needs train even when the recipe reads only test)."""
        if "train" in self.data:
            return self.data
        return load_data_from_config(self.data_config.model_copy(update={"split": None}))

    def rel(self, path: Path) -> str:
        """``path`` relative to the run directory (how report sections link images)."""
        return Path(path).resolve().relative_to(Path(self.run_path).resolve()).as_posix()


@dataclass
class StageOutput:
    """What ``Stage.run`` returns: its report section, and the model it leaves in memory (when it handed on
    one it trained, so the next stage need not load it again)."""

    section: str
    loaded: Any = None


@runtime_checkable
class Stage(Protocol):
    """One lifecycle step. See the module docstring; ``BaseStage`` gives the defaults."""

    kind: str
    config_cls: type[StageConfig]
    title: str

    def receives(self, cfg: Any, current: ModelHandoff, history: list[ModelHandoff]) -> ModelHandoff: ...

    def check(self, cfg: Any, incoming: ModelHandoff) -> str | None: ...

    def hand_on(self, cfg: Any, incoming: ModelHandoff, folder: Path) -> ModelHandoff: ...

    def writes(self, cfg: Any) -> list[str]: ...

    def plan_notes(self, cfg: Any, incoming: ModelHandoff, model: ModelConfig) -> list[str]: ...

    def run(self, ctx: StageContext, cfg: Any, out: Path) -> StageOutput | str: ...

    def glance(self, folder: Path, cfg: Any) -> Glance: ...


class BaseStage:
    """Defaults for a stage that reads the model it receives and hands it on unchanged.

    Not a vehicle for code reuse beyond these defaults: each stage module owns its own work.
    """

    kind: ClassVar[str] = ""
    config_cls: ClassVar[type[StageConfig]] = StageConfig
    title: ClassVar[str] = ""

    def receives(self, cfg: Any, current: ModelHandoff, history: list[ModelHandoff]) -> ModelHandoff:
        """The model this stage starts from: the one the stage before handed on (``history[0]`` is the recipe's)."""
        return current

    def check(self, cfg: Any, incoming: ModelHandoff) -> str | None:
        """Why this stage cannot start from ``incoming`` (None: it can)."""
        return None

    def hand_on(self, cfg: Any, incoming: ModelHandoff, folder: Path) -> ModelHandoff:
        """The model the next stage receives (default: the one this stage received)."""
        return incoming

    def writes(self, cfg: Any) -> list[str]:
        """What the stage writes into its folder (for ``llmcycle plan``)."""
        return ["section.md"]

    def plan_notes(self, cfg: Any, incoming: ModelHandoff, model: ModelConfig) -> list[str]:
        """Extra facts for ``llmcycle plan`` (estimated memory, ...); nothing is loaded."""
        return []

    def run(self, ctx: StageContext, cfg: Any, out: Path) -> StageOutput | str:
        raise NotImplementedError

    def glance(self, folder: Path, cfg: Any) -> Glance:
        """This stage's rows in "the lifecycle at a glance", read from what it wrote."""
        return Glance()


_REGISTRY: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    """Add a stage kind; its ``kind`` becomes a recipe entry. A kind registered twice is an error."""
    if not isinstance(stage, Stage) or not stage.kind:
        raise TypeError(f"register_stage: {stage!r} does not satisfy the Stage protocol (kind, config_cls, title, "
                        "receives, check, hand_on, writes, plan_notes, run, glance)")
    if not (isinstance(stage.config_cls, type) and issubclass(stage.config_cls, StageConfig)):
        raise TypeError(f"register_stage: {stage.kind}.config_cls must be a StageConfig subclass")
    if stage.kind in _REGISTRY:
        raise ValueError(f"register_stage: stage kind {stage.kind!r} is already registered "
                         f"({type(_REGISTRY[stage.kind]).__module__})")
    _REGISTRY[stage.kind] = stage
    return stage


def unregister_stage(kind: str) -> None:
    """Remove a stage kind (tests, plugins replacing one)."""
    _REGISTRY.pop(kind, None)


def stage_kinds() -> list[str]:
    """Registered kinds, in registration order (the order the lifecycle usually runs them)."""
    return list(_REGISTRY)


def get_stage(kind: str, where: str = "") -> Stage:
    """The stage of ``kind``; an unknown kind is a ``ConfigError`` listing the valid ones."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}unknown stage {kind!r}; valid: {', '.join(_REGISTRY)}") from None
