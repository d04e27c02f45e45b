"""The recipe reference, generated from the config classes (each field is documented once, there)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from llmcycle.core.config import DataConfig, ModelConfig
from llmcycle.recipe.recipe import Recipe
from llmcycle.stages import get_stage, stage_kinds


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        factory = field.default_factory
        return "(see its section)" if isinstance(factory, type) and issubclass(factory, BaseModel) else \
            f"`{factory()!r}`"
    return f"`{field.default!r}`"


def _cell(text: str | None) -> str:
    """A description as table text: ``<name>-<timestamp>`` shown as written, not taken for an HTML tag, and a
    ``|`` kept inside its cell."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def fields_table(cls: type[BaseModel]) -> str:
    """A Markdown table of ``cls``'s fields: name, type, default, description."""
    lines = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in cls.model_fields.items():
        lines.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {_cell(field.description)} |")
    return "\n".join(lines) + "\n"


def _nested(cls: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """``(field, model class)`` of the fields holding a config (directly, in a list, or optional)."""
    import typing

    out = []
    for name, field in cls.model_fields.items():
        stack = [field.annotation]
        while stack:
            ann = stack.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                out.append((name, ann))
                break
            stack.extend(typing.get_args(ann))
    return out


def _sections(prefix: str, cls: type[BaseModel], level: int) -> list[str]:
    """Sections for the nested configs of ``cls`` (``tune.lora``, ``tune.mix[]``...), depth first."""
    parts: list[str] = []
    for name, sub in _nested(cls):
        if sub in (DataConfig, ModelConfig):  # documented once, at the top
            section = "data" if sub is DataConfig else "model"
            parts += [f"{'#' * level} {prefix}.{name}\n", f"Same fields as the `{section}` section above.\n"]
            continue
        parts += [f"{'#' * level} {prefix}.{name}\n", (sub.__doc__ or "").strip() + "\n", fields_table(sub)]
        parts += _sections(f"{prefix}.{name}", sub, min(level + 1, 6))
    return parts


def recipe_reference() -> str:
    """The whole reference: the recipe, its model and data sections, and every stage kind."""
    parts = ["# Recipe reference\n", "Generated from llmcycle's config classes by `llmcycle reference`; "
             "do not edit by hand.\n", "## recipe (top level)\n", fields_table(Recipe),
             "## model\n", (ModelConfig.__doc__ or "").strip() + "\n", fields_table(ModelConfig),
             "## data\n", (DataConfig.__doc__ or "").strip() + "\n", fields_table(DataConfig), "## stages\n",
             "Each entry of `stages` is `- KIND: {settings}`; stages run in the order listed.\n"]
    for kind in stage_kinds():
        cls = get_stage(kind).config_cls
        parts += [f"### {kind}\n", (cls.__doc__ or "").strip() + "\n", fields_table(cls)]
        parts += _sections(kind, cls, 4)
    return "\n".join(parts)
