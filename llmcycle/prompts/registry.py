"""The template registry (``TEMPLATES``) and user templates from YAML.

A templates file is a YAML list of mappings (or a mapping with a ``templates:`` list)::

    - name: polite
      text: "Please summarise this chat.\\n\\n{dialogue}\\n\\nSummary:"
      target: " {summary}"          # optional; default by task
      task: summarization           # optional
      description: A politer ask.   # optional

Every entry is checked like a builtin (placeholder syntax, a placeholder present, unique name);
errors name the file, the entry's position and its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmcycle.core.config import read_yaml
from llmcycle.prompts.catalog import BUILTIN_TEMPLATES
from llmcycle.prompts.templates import PromptError, PromptTemplate

TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in BUILTIN_TEMPLATES}
TEMPLATE_KEYS = ("name", "text", "target", "task", "description", "input_field")


def get_template(name: str | PromptTemplate) -> PromptTemplate:
    """The registered template called ``name`` (a ``PromptTemplate`` is returned as is)."""
    if isinstance(name, PromptTemplate):
        return name
    try:
        return TEMPLATES[name]
    except (KeyError, TypeError):
        raise PromptError(f"unknown prompt template {name!r}; valid: {', '.join(sorted(TEMPLATES))}") from None


def list_templates(task: str | None = None) -> list[PromptTemplate]:
    """Registered templates (all, or those of ``task``), in registration order."""
    return [t for t in TEMPLATES.values() if task is None or t.task == task]


def register_template(template: PromptTemplate | None = None, /, *, replace: bool = False,
                      **fields: Any) -> PromptTemplate:
    """Add a template: ``register_template(PromptTemplate(...))`` or ``register_template(name=..., text=...)``.

    A name already registered is an error unless ``replace=True``.
    """
    if template is None:
        template = template_from_dict(fields, where="register_template")
    elif fields:
        raise PromptError("register_template: pass a PromptTemplate or keyword fields, not both")
    if not isinstance(template, PromptTemplate):
        raise PromptError(f"register_template: expected a PromptTemplate, got {type(template).__name__}")
    if template.name in TEMPLATES and not replace:
        raise PromptError(f"prompt template '{template.name}' is already registered; choose another name "
                          "(or pass replace=True)")
    TEMPLATES[template.name] = template
    return template


def template_from_dict(data: Any, where: str) -> PromptTemplate:
    """A ``PromptTemplate`` from a mapping of ``TEMPLATE_KEYS``; errors are prefixed with ``where``."""
    if not isinstance(data, dict):
        raise PromptError(f"{where}: a template must be a mapping with name and text, got {type(data).__name__}")
    unknown = sorted(set(data) - set(TEMPLATE_KEYS))
    if unknown:
        raise PromptError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid: {', '.join(TEMPLATE_KEYS)}")
    for key in ("name", "text"):
        if data.get(key) is None:
            raise PromptError(f"{where}: missing '{key}'")
    values = {k: v for k, v in data.items() if v is not None}
    try:
        return PromptTemplate(**values)
    except PromptError as exc:
        raise PromptError(f"{where}: {exc}") from None


def load_templates(path: str | Path, register: bool = False, replace: bool = False) -> list[PromptTemplate]:
    """Read and check the user templates in YAML file ``path``; ``register=True`` adds them to ``TEMPLATES``.

    Nothing is registered unless every entry is valid (no partial registration).
    """
    entries = _read_entries(Path(path))
    templates: list[PromptTemplate] = []
    for i, entry in enumerate(entries, start=1):
        label = entry.get("name") if isinstance(entry, dict) else None
        where = f"{path}: template {i}" + (f" ('{label}')" if label else "")
        template = template_from_dict(entry, where)
        if any(t.name == template.name for t in templates):
            raise PromptError(f"{where}: duplicate name '{template.name}' in this file")
        if register and template.name in TEMPLATES and not replace:
            raise PromptError(f"{where}: prompt template '{template.name}' is already registered; choose another name")
        templates.append(template)
    if register:
        for template in templates:
            TEMPLATES[template.name] = template
    return templates


def _read_entries(path: Path) -> list[Any]:
    data = read_yaml(path, PromptError)
    if isinstance(data, dict) and set(data) == {"templates"}:
        data = data["templates"]
    if not isinstance(data, list) or not data:
        raise PromptError(f"{path}: expected a non-empty list of templates (or a mapping with a 'templates:' list)")
    return data
