"""Typed config classes (pydantic v2) shared by every stage, and YAML loading.

Each field carries its documentation once, in ``Field(description=...)``; the CLI help and the
recipe reference are generated from it. Validation errors are turned into ``ConfigError`` naming
the dotted field path (``model.dtype: Input should be 'fp32', 'bf16', 'fp16' or 'auto'``).
Later stages subclass ``StageConfig``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmcycle.core.errors import ConfigError

T = TypeVar("T", bound="StageConfig")

Dtype = Literal["fp32", "bf16", "fp16", "auto"]
Device = Literal["cpu", "cuda", "auto"]


class StageConfig(BaseModel):
    """Base for every config: unknown fields are errors (typos never pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
        """Validate ``data``; errors name the dotted field path, prefixed by ``where``."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, where, cls)) from None

    @classmethod
    def from_yaml(cls: type[T], path: str | Path) -> T:
        """Load and validate a YAML file."""
        return cls.from_dict(load_yaml(path), where=str(path))


def fields_at(cls: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the config class found by walking ``loc`` down from ``cls`` (through nested
    configs, lists, dicts and optionals); None when the path leaves the configs."""
    import typing

    ann: Any = cls
    for part in loc:
        model = _model_in(ann)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            ann = model.model_fields[part].annotation
            continue
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        origin = typing.get_origin(ann)
        if origin in (list, tuple, set) and args and isinstance(part, int):
            ann = args[0]
        elif origin is dict and len(args) == 2:
            ann = args[1]
        else:
            return None
    model = _model_in(ann)
    return list(model.model_fields) if model is not None else None


def _model_in(ann: Any) -> type[BaseModel] | None:
    """The config class ``ann`` is (or an optional of it)."""
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    models = [a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 and typing.get_origin(ann) is not dict else None


def format_validation_error(exc: ValidationError, where: str = "", cls: type[BaseModel] | None = None) -> str:
    """One line per problem: ``<where>: <field.path>: <message>``; an unknown field lists the valid names."""
    lines = []
    for err in exc.errors():
        loc = ".".join(repr(p) if isinstance(p, str) and (not p or not p.isprintable() or " " in p) else str(p)
                       for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            valid = fields_at(cls, tuple(err["loc"])[:-1]) if cls is not None else None
            msg = "unknown field" + (f"; valid: {', '.join(valid)}" if valid else " (check the spelling)")
        elif msg.startswith("Input should be") and _shown(err.get("input")):
            msg += f", got {err['input']!r}"  # the value at fault, as given ('fp7', 'many', -1)
        prefix = f"{where}: " if where else ""
        if not loc and _names_field(msg):  # a whole-config check whose message starts with the field it names
            lines.append(f"{prefix}{msg}")
        elif not loc:
            lines.append(f"{prefix}(top level): {msg}")
        elif msg.startswith((f"{loc}[", f"{loc}.")):  # a nested config's own error already names the path
            lines.append(f"{prefix}{msg}")
        else:
            lines.append(f"{prefix}{loc}: {msg}")
    return " ".join("; ".join(lines).splitlines())  # one line, whatever a key or a value held


def _shown(value: Any) -> bool:
    """Whether a rejected value is short and plain enough to quote in a one-line message."""
    return isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 60


def _names_field(msg: str) -> bool:
    """Whether ``msg`` starts with a field path and a colon (``pairs: ...``, ``stages[2].tune.templates[0]: ...``)."""
    return re.match(r"^[A-Za-z_][\w]*(\[\d+\])?(\.[A-Za-z_][\w]*(\[\d+\])?)*: ", msg) is not None


def read_yaml(path: str | Path, error: type[Exception] = ConfigError) -> Any:
    """Parse a YAML file of any shape; problems raise ``error`` naming the file (and line)."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: no such file")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise error(f"{p}:{line} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError:
        raise error(f"{p}: not UTF-8 text") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (a config or recipe), with errors that name the file and line."""
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of field: value, got {type(data).__name__}")
    return data


class ModelConfig(StageConfig):
    """Which model to load and how."""

    source: str = Field(
        "builtin:minilm-seq2seq",
        description="Hub id (google/flan-t5-base), local directory from save_pretrained, or builtin:NAME.",
    )
    weights: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="'random' builds the real architecture with random weights (bundled configs work offline); "
        "for cost measurements only, labelled untrained everywhere.",
    )
    dtype: Dtype = Field("fp32", description="Parameter dtype; 'auto' picks bf16 on GPUs that support it, else fp32.")
    device: Device = Field("cpu", description="Where to put the model; 'auto' picks cuda when available.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) when source is a hub id.")
    adapter: str | None = Field(None, description="A PEFT adapter directory to attach to the model (LoRA, prompt "
                                "tuning); the base weights stay untouched.")
    chat: Literal["auto", "always", "never"] = Field(
        "auto", description="Use the model in chat form: every stage (prompt lab, generate, evaluate, tune, PPO, DPO, "
        "constitutional, serve) renders prompts and training examples through its tokenizer's chat template, "
        "with the loss on assistant turns only. auto: when the tokenizer has a chat template; always: refuse a "
        "model without one; never: plain text prompts.")


class DataConfig(StageConfig):
    """Which data to load and which columns mean what (options of ``llmcycle.data.load_data``)."""

    source: str = Field(
        "builtin:dialogues",
        description="Hub id, a .jsonl/.json/.csv/.parquet file, a directory of split files, or builtin:dialogues.",
    )
    input_column: str = Field("dialogue", min_length=1, description="Column holding the model input.")
    reference_columns: list[str] | None = Field(
        None,
        min_length=1,
        description="Column(s) holding reference outputs; default: 'summary', or summary1..summaryN when present.",
    )
    require_references: bool = Field(
        True,
        description="Every split must have a reference column and every row a non-empty reference; "
        "False loads inputs only (references = []) where there are none.",
    )
    split: str | None = Field(
        None, description="Keep only this split (train, validation or test; dev/valid/val mean validation)."
    )
    split_name: str | None = Field(
        None,
        min_length=1,
        description="Split of a single file; default: the split word in its name (a.dev.jsonl -> validation), "
        "else 'train'. When set, it wins over the name.",
    )
    n: int | None = Field(None, ge=1, description="Seeded subsample of at most n rows per split (original order kept).")
    every_k: int | None = Field(None, ge=1, description="Keep every k-th row, rows[::k] (applied before n).")
    seed: int = Field(42, description="Seed for subsampling.")
    on_bad_rows: Literal["error", "skip"] = Field(
        "error",
        description="'error' stops at the first bad row naming file and line; 'skip' drops and counts them "
        "(bad rows are checked over the whole split, before every_k and n).",
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) when source is a hub id.")
