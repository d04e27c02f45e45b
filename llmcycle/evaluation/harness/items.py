"""Rows of a task's JSONL file turned into items (prompt, choices, gold), and few-shot contexts.

Every problem in a row is a ``DataError`` naming the file, the line and the field
(``tasks/gk.jsonl:7: answer: 4 is out of range for 4 choices (valid: 0..3)``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcycle.core.errors import ConfigError, DataError
from llmcycle.data.readers import read_jsonl_objects
from llmcycle.evaluation.harness.task import TaskConfig

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Item:
    """One question of a task, ready to score."""

    index: int  # 0-based position among the file's rows
    where: str  # "file:line", for messages
    prompt: str  # the rendered prompt, without few-shot examples
    target: str  # the solved answer a few-shot example shows (formatted gold choice, or first reference)
    choices: list[str] = field(default_factory=list)  # multiple choice: the raw choice texts
    continuations: list[str] = field(default_factory=list)  # choice_format applied to each choice
    gold: int | None = None  # multiple choice: index of the right choice
    references: list[str] = field(default_factory=list)  # generative: acceptable answers
    row_id: Any = None  # the row's "id" column, when it has one


class _RowView(dict):
    """A row as the prompt template sees it; a missing key is an error naming the row and the column."""

    where: str = ""

    def __missing__(self, key: str) -> Any:
        cols = ", ".join(k for k in self if k != "options") or "none"
        raise DataError(f"{self.where}: prompt uses {{{key}}} but the row has no column {key!r} "
                        f"(columns: {cols}; map one with fields.{key} or change the prompt)")


def read_jsonl(path: Path, what: str = "data") -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each non-blank line; errors name the file and line."""
    return read_jsonl_objects(path, what)


def _text(value: Any, where: str, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"{where}: {name}: expected a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise DataError(f"{where}: {name}: is empty")
    return text


def row_choices(task: TaskConfig, row: dict[str, Any], where: str) -> list[str]:
    """The choice texts of a row (from one list column or from one column per choice)."""
    spec = task.fields.choices
    if isinstance(spec, list):
        missing = [c for c in spec if c not in row]
        if missing:
            raise DataError(f"{where}: choices: the row has no column {missing[0]!r} (fields.choices: {spec})")
        return [_text(row[c], where, f"choices column {c!r}") for c in spec]
    if spec not in row:
        raise DataError(f"{where}: choices: the row has no column {spec!r} (set fields.choices to the column "
                        "holding the list of choices, or to a list of columns)")
    value = row[spec]
    if not isinstance(value, list) or len(value) < 2:
        raise DataError(f"{where}: choices: column {spec!r} must be a list of at least two choices, got {value!r}")
    return [_text(v, where, f"choices[{i}]") for i, v in enumerate(value)]


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, str) and value.strip().isdigit()


def _is_letter(value: Any) -> bool:
    return isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS


def _answer_kind(value: Any, choices: list[str], where: str) -> str:
    """``answer_type: auto``: an int is an index, a choice's text is text, a single letter is a letter."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "index"
    if isinstance(value, str) and value in choices:
        return "text"
    if _is_letter(value):
        return "letter"
    if _is_index(value):
        return "index"
    raise DataError(f"{where}: answer: {value!r} is neither an index, a letter nor one of the choices {choices}")


def parse_answer(value: Any, choices: list[str], answer_type: str, where: str) -> int:
    """The gold choice index from an index, a letter or a choice's text."""
    n = len(choices)
    kind = _answer_kind(value, choices, where) if answer_type == "auto" else answer_type
    if kind == "index":
        if not _is_index(value):
            raise DataError(f"{where}: answer: expected a 0-based index, got {value!r}")
        i = int(value)
    elif kind == "letter":
        if not _is_letter(value):
            raise DataError(f"{where}: answer: expected a letter A-{LETTERS[n - 1]}, got {value!r}")
        i = LETTERS.index(value.strip().upper())
    else:
        stripped = [c.strip() for c in choices]
        if not isinstance(value, str) or value.strip() not in stripped:
            raise DataError(f"{where}: answer: {value!r} is not one of the choices {choices}")
        i = stripped.index(value.strip())
    if not 0 <= i < n:
        raise DataError(f"{where}: answer: {value!r} is out of range for {n} choices (valid: 0..{n - 1}, "
                        f"A..{LETTERS[n - 1]})")
    return i


def _row_view(task: TaskConfig, row: dict[str, Any], where: str, choices: list[str]) -> _RowView:
    view = _RowView(row)
    view.where = where
    for alias in ("question", "context"):
        column = getattr(task.fields, alias)
        if column is not None and column in row:
            view[alias] = row[column]
    if choices:
        view["options"] = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return view


def _references(task: TaskConfig, row: dict[str, Any], where: str) -> list[str]:
    column = task.fields.answer
    if column not in row:
        raise DataError(f"{where}: answer: the row has no column {column!r} (set fields.answer)")
    value = row[column]
    values = value if isinstance(value, list) else [value]
    if not values:
        raise DataError(f"{where}: answer: empty list of references")
    return [_text(v, where, f"answer[{i}]" if isinstance(value, list) else "answer") for i, v in enumerate(values)]


def make_item(task: TaskConfig, index: int, row: dict[str, Any], where: str) -> Item:
    """Validate one row and render its prompt."""
    choices: list[str] = []
    if task.type == "multiple_choice":
        choices = row_choices(task, row, where)
        if len(choices) > len(LETTERS):
            raise DataError(f"{where}: choices: at most {len(LETTERS)} choices, got {len(choices)}")
    try:
        prompt = task.prompt.format_map(_row_view(task, row, where, choices))
    except DataError:
        raise
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: prompt: cannot fill the template with this row ({exc})") from None
    item = Item(index=index, where=where, prompt=prompt, target="", row_id=row.get("id"))
    if task.type == "multiple_choice":
        if task.fields.answer not in row:
            raise DataError(f"{where}: answer: the row has no column {task.fields.answer!r} (set fields.answer)")
        item.choices = choices
        item.continuations = [task.choice_format.format(choice=c, letter=LETTERS[i], index=i)
                              for i, c in enumerate(choices)]
        item.gold = parse_answer(row[task.fields.answer], choices, task.answer_type, where)
        item.target = item.continuations[item.gold]
    else:
        item.references = _references(task, row, where)
        item.target = item.references[0]
    return item


def read_items(task: TaskConfig, path: Path | None = None, what: str = "data") -> list[Item]:
    """Every row of ``path`` (default: the task's data file) as a validated item."""
    path = path or task.data_path
    rows = read_jsonl(path, f"{task.where}: {what}")
    return [make_item(task, i, row, f"{path}:{line}") for i, (line, row) in enumerate(rows)]


def fewshot_examples(task: TaskConfig, item: Item, pool: list[Item], k: int, same_file: bool) -> list[Item]:
    """``k`` solved examples for ``item``, drawn without replacement by a generator seeded from
    (fewshot_seed, item index); never the item itself nor a row with the same prompt."""
    if k == 0:
        return []
    candidates = [p for p in pool if not (same_file and p.index == item.index) and p.prompt != item.prompt]
    if len(candidates) < k:
        source = task.fewshot_file or task.data
        raise ConfigError(f"{task.where}: num_fewshot: {k} examples asked but the few-shot pool ({source}) has "
                          f"only {len(candidates)} rows besides the item at {item.where}")
    rng = random.Random(f"{task.fewshot_seed}:{item.index}")  # str seeds are stable across processes
    return rng.sample(candidates, k)


def build_context(task: TaskConfig, item: Item, shots: list[Item]) -> str:
    """description, solved examples and the question, joined by ``fewshot_delimiter``."""
    parts = [task.description] if task.description else []
    parts += [s.prompt + task.target_delimiter + s.target for s in shots]
    parts.append(item.prompt)
    return task.fewshot_delimiter.join(parts)
