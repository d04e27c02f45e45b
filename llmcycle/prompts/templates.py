"""``PromptTemplate``: text with ``{field}`` placeholders, checked when made, filled from a data row.

Field resolution (one rule, used everywhere a template meets a row):

1. a column of the row with that name wins (``{dialogue}`` takes ``row["dialogue"]``);
2. else an *input alias* (``dialogue``, ``text``, ``input``) takes ``row["input"]``, the
   normalised input column every ``load_data`` split has;
3. else a *target alias* (``summary``, ``target``) takes ``row["references"][0]``;
4. else it is an error naming the field, the template and the fields the row does have.

Placeholders are plain names: ``{0}``, ``{}``, ``{a.b}``, ``{a[0]}``, ``{x!r}`` and ``{x:>10}`` are
rejected when the template is made, so a template that constructs renders every time its fields
exist. Literal braces are written ``{{`` and ``}}``.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any, Mapping

from llmcycle.core.errors import LLMCycleError

INPUT_ALIASES = ("dialogue", "text", "input")
TARGET_ALIASES = ("summary", "target")
# The placeholder a template truncates when the budget is short, in order of preference.
INPUT_FIELDS = ("dialogue", "text", "input", "context", "document", "article", "passage")
# The text appended to a template to show a solved example, when a template gives none.
DEFAULT_TARGETS = {
    "summarization": " {summary}",
    "question-answering": " {answer}",
    "classification": " {label}",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class PromptError(LLMCycleError):
    """A template that cannot be made or filled (bad syntax, missing field, unknown name)."""


def placeholders(text: str, where: str) -> list[str]:
    """The ``{field}`` names in ``text``, in order of first use; ``PromptError`` on bad syntax.

    ``where`` names the template and its part (``template 'x': text``) in error messages.
    """
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise PromptError(f"{where}: bad placeholder syntax ({exc}); write literal braces as {{{{ and }}}}") from None
    names: list[str] = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if name == "" or name.isdigit():
            raise PromptError(f"{where}: positional placeholder {shown}; name the field, e.g. {{dialogue}}")
        if not name.isidentifier():
            raise PromptError(f"{where}: placeholder {shown} is not a plain field name (no attributes or indexing)")
        if spec or conversion:
            raise PromptError(f"{where}: placeholder {shown} has a conversion or format spec; use plain {{{name}}}")
        if name not in names:
            names.append(name)
    return names


def _as_text(value: Any, name: str, template: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, bool)):
        return str(value)
    raise PromptError(
        f"template '{template}': field '{name}' holds a {type(value).__name__}, not text; "
        "use {summary} or {target} for the first reference"
    )


def available_fields(row: Mapping[str, Any]) -> list[str]:
    """Every placeholder name ``row`` can fill: its columns plus the aliases that resolve."""
    names = [k for k, v in row.items() if v is not None]
    if isinstance(row.get("input"), str):
        names += [a for a in INPUT_ALIASES if a not in names]
    if row.get("references"):
        names += [a for a in TARGET_ALIASES if a not in names]
    return names


def resolve_field(row: Mapping[str, Any], name: str, template: str = "?") -> str:
    """The text that fills ``{name}`` from ``row`` (the rule in the module docstring)."""
    if row.get(name) is not None:
        return _as_text(row[name], name, template)
    if name in INPUT_ALIASES and row.get("input") is not None:
        return _as_text(row["input"], name, template)
    refs = row.get("references")
    if name in TARGET_ALIASES and refs:
        return _as_text(refs[0] if isinstance(refs, (list, tuple)) else refs, name, template)
    have = ", ".join(available_fields(row)) or "(none)"
    raise PromptError(f"template '{template}' needs field '{name}', which this row does not have; "
                      f"available fields: {have}")


def input_text(row: Mapping[str, Any]) -> str:
    """The row's input text (``input``, else the first of ``INPUT_FIELDS`` it has): what shots are matched on."""
    for name in ("input", *INPUT_FIELDS):
        if isinstance(row.get(name), str):
            return row[name]
    have = ", ".join(map(str, row.keys())) or "(none)"
    raise PromptError(f"row has no input text (one of the columns input, {', '.join(INPUT_FIELDS)}); columns: {have}")


@dataclass(frozen=True)
class PromptTemplate:
    """A named prompt: ``text`` is the query, ``text + target`` a solved example (a shot).

    Attributes:
        name: registry name (letters, digits, ``_ . -``).
        text: the prompt with ``{field}`` placeholders.
        task: what it is for (``summarization``, ``question-answering``, ``classification``, ...).
        target: appended to ``text`` to render a solved shot, e.g. ``" {summary}"``; default by task.
        description: one line for listings.
        input_field: the placeholder truncated when the budget is short (never the instruction);
            default: the first of ``dialogue, text, input, context, ...`` in ``text``, else the first.
    """

    name: str
    text: str
    task: str = "summarization"
    target: str | None = None
    description: str = ""
    input_field: str | None = None
    fields: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise PromptError(f"template name {self.name!r} is not valid: use letters, digits, '_', '.', '-'")
        where = f"template '{self.name}'"
        for attr in ("text", "task", "description"):
            if not isinstance(getattr(self, attr), str):
                raise PromptError(f"{where}: {attr} must be a string, got {type(getattr(self, attr)).__name__}")
        if not self.text.strip():
            raise PromptError(f"{where}: text is empty")
        names = placeholders(self.text, f"{where}: text")
        if not names:
            raise PromptError(f"{where}: text has no {{field}} placeholder, so the input would never reach the "
                              "model; add one, e.g. {dialogue}")
        object.__setattr__(self, "fields", tuple(names))
        self._init_target(where)
        self._init_input_field(where, names)

    def _init_target(self, where: str) -> None:
        target = self.target if self.target is not None else DEFAULT_TARGETS.get(self.task, " {target}")
        if not isinstance(target, str) or not target.strip():
            raise PromptError(f"{where}: target must be non-empty text such as ' {{summary}}'")
        if not placeholders(target, f"{where}: target"):
            raise PromptError(f"{where}: target has no {{field}} placeholder; a shot needs its reference, "
                              "e.g. ' {summary}'")
        object.__setattr__(self, "target", target)

    def _init_input_field(self, where: str, names: list[str]) -> None:
        if self.input_field is None:
            chosen = next((f for f in INPUT_FIELDS if f in names), names[0])
            object.__setattr__(self, "input_field", chosen)
        elif self.input_field not in names:
            raise PromptError(f"{where}: input_field '{self.input_field}' is not a placeholder of text "
                              f"(placeholders: {', '.join(names)})")

    def render(self, row: Mapping[str, Any], overrides: Mapping[str, str] | None = None) -> str:
        """The query prompt for ``row``; ``overrides`` replace field values (a truncated input)."""
        return _fill(self.text, self.name, row, overrides or {})

    def render_target(self, row: Mapping[str, Any]) -> str:
        """The solved part of a shot: ``target`` filled from ``row`` (its reference)."""
        return _fill(self.target or "", self.name, row, {})

    def render_shot(self, row: Mapping[str, Any]) -> str:
        """A solved example: the prompt for ``row`` followed by its reference."""
        return self.render(row) + self.render_target(row)

    def to_dict(self) -> dict[str, Any]:
        """The template as the mapping a YAML templates file holds."""
        return {"name": self.name, "text": self.text, "task": self.task, "target": self.target,
                "description": self.description, "input_field": self.input_field}


def _fill(text: str, template: str, row: Mapping[str, Any], overrides: Mapping[str, str]) -> str:
    parts: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(text):
        parts.append(literal)
        if name is not None:
            parts.append(overrides[name] if name in overrides else resolve_field(row, name, template))
    return "".join(parts)
