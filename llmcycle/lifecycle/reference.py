"""The recipe reference, generated from the config classes (each field is documented once, there)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from llmcycle.config import DataConfig, ModelConfig
from llmcycle.lifecycle.recipe import STAGE_CONFIGS, Recipe


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.default_factory is not None:
        factory = field.default_factory
        return "(see its section)" if isinstance(factory, type) and issubclass(factory, BaseModel) else \
            f"`{factory()!r}`"
    return f"`{field.default!r}`"


def fields_table(cls: type[BaseModel]) -> str:
    """A Markdown table of ``cls``'s fields: name, type, default, description."""
    lines = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in cls.model_fields.items():
        lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
    return "\n".join(lines) + "\n"


def recipe_reference() -> str:
    """The whole reference: the recipe, its model and data sections, and every stage kind."""
    parts = ["# Recipe reference\n", "Generated from llmcycle's config classes by `llmcycle reference`; "
             "do not edit by hand.\n", "## recipe (top level)\n", fields_table(Recipe),
             "## model\n", (ModelConfig.__doc__ or "").strip() + "\n", fields_table(ModelConfig),
             "## data\n", (DataConfig.__doc__ or "").strip() + "\n", fields_table(DataConfig), "## stages\n",
             "Each entry of `stages` is `- KIND: {settings}`; stages run in the order listed.\n"]
    for kind, cls in STAGE_CONFIGS.items():
        parts += [f"### {kind}\n", (cls.__doc__ or "").strip() + "\n", fields_table(cls)]
    return "\n".join(parts)
