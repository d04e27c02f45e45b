"""Column mapping, row checks, sampling, and turning checked rows into a ``datasets.Dataset``.

Every split gets two normalised columns beside its own: ``input`` (the text in
``input_column``) and ``references`` (the non-empty strings in ``reference_columns``; DialogSum's
test split gives three). A row is bad when its input is missing, null, not a string or blank,
when a reference column holds something other than a string (or list of strings), or when
references are required and it has none.

An input column of conversations (OpenAI's ``messages``: lists of role/content turns) is
conversational (``llmcycle.data.conversation``): ``input`` is the last user turn, the final assistant
turn is the first reference, and a malformed turn is a bad row naming the turn.
"""

from __future__ import annotations

import inspect
import random
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from llmcycle.core.errors import DataError
from llmcycle.data.conversation import conversation_fields, is_conversation
from llmcycle.data.readers import RawSplit, Row, type_name

if TYPE_CHECKING:
    from datasets import Dataset

    from llmcycle.core.config import DataConfig

NEW_COLUMNS = ("input", "references")
_MISSING = object()


class BadRow(Exception):
    """A row that cannot be used; the message says why (the caller adds where)."""


def default_reference_columns(columns: list[str]) -> list[str]:
    """``summary`` if present, else ``summary1..summaryN`` sorted by number, else none."""
    if "summary" in columns:
        return ["summary"]
    numbered = [c for c in columns if re.fullmatch(r"summary\d+", c)]
    return sorted(numbered, key=lambda c: int(c.removeprefix("summary")))


def resolve_columns(raw: RawSplit, split: str, cfg: DataConfig) -> tuple[str, list[str]]:
    """The input column and reference columns for one split, checked against its columns."""
    columns = raw.columns
    listed = ", ".join(columns) or "(none)"
    if cfg.input_column not in columns:
        raise DataError(
            f"{raw.origin}: unknown input column '{cfg.input_column}'; columns are: {listed} (set input_column)"
        )
    first = next((r.values.get(cfg.input_column) for r in raw.rows if r.values is not None), None)
    if is_conversation(first):  # messages: the reference is the final assistant turn (plus any named columns)
        return cfg.input_column, list(cfg.reference_columns or [])
    refs = list(cfg.reference_columns) if cfg.reference_columns else default_reference_columns(columns)
    for column in refs:
        if column not in columns:
            raise DataError(
                f"{raw.origin}: unknown reference column '{column}'; columns are: {listed} (set reference_columns)"
            )
    if not refs and cfg.require_references:
        raise DataError(
            f"{raw.origin}: the {split} split has no reference column ('summary' or summary1..summaryN); "
            f"columns are: {listed}; set reference_columns, or require_references=False to load inputs only"
        )
    for name, wanted in (("input", [cfg.input_column]), ("references", refs)):
        if name in columns and name not in wanted:
            raise DataError(
                f"{raw.origin}: column '{name}' would be replaced by the normalised '{name}' column; "
                f"rename it, or map it with {'input_column' if name == 'input' else 'reference_columns'}"
            )
    return cfg.input_column, refs


def normalise_row(values: dict[str, Any], input_column: str, reference_columns: list[str],
                  require_references: bool) -> tuple[str, list[str]]:
    """``(input, references)`` of one row, or ``BadRow`` saying what is wrong."""
    text = values.get(input_column, _MISSING)
    if text is _MISSING:
        raise BadRow(f"column '{input_column}' is missing")
    if text is None:
        raise BadRow(f"column '{input_column}' is null")
    references: list[str] = []
    if isinstance(text, list) and any(isinstance(t, dict) for t in text):  # a conversation (messages)
        try:
            text, references = conversation_fields(text, input_column)
        except ValueError as exc:
            raise BadRow(str(exc)) from None
    if not isinstance(text, str):
        raise BadRow(f"column '{input_column}' is not a string (got {type_name(text)})")
    if not text.strip():
        raise BadRow(f"column '{input_column}' is empty")
    for column in reference_columns:
        value = values.get(column)
        items = value if isinstance(value, list) else [] if value is None else [value]
        for item in items:
            if not isinstance(item, str):
                raise BadRow(f"column '{column}' is not a string (got {type_name(item)})")
            if item.strip():
                references.append(item)
    if require_references and not references:
        raise BadRow(f"no reference: column(s) {', '.join(map(repr, reference_columns))} empty or missing")
    return text, references


def check_rows(raw: RawSplit, input_column: str, reference_columns: list[str], cfg: DataConfig
               ) -> tuple[list[int], list[str], list[list[str]], list[str]]:
    """Indices, inputs and references of the good rows, and one message per bad row.

    With ``on_bad_rows="error"`` the first bad row raises ``DataError`` naming its file and line.
    """
    keep: list[int] = []
    inputs: list[str] = []
    references: list[list[str]] = []
    bad: list[str] = []
    for index, row in enumerate(raw.rows):
        try:
            if row.values is None:
                raise BadRow(row.problem or "unreadable row")
            text, refs = normalise_row(row.values, input_column, reference_columns, cfg.require_references)
        except BadRow as exc:
            message = f"{raw.where(row)}: {exc}"
            if cfg.on_bad_rows == "error":
                raise DataError(f"{message} (fix the row, or pass on_bad_rows='skip' to drop bad rows)") from None
            bad.append(message)
            continue
        keep.append(index)
        inputs.append(text)
        references.append(refs)
    return keep, inputs, references, bad


def sample_indices(count: int, every_k: int | None, n: int | None, seed: int) -> list[int]:
    """Positions to keep: every k-th (``[::k]``) first, then a seeded sample of at most n, in order."""
    picked = list(range(0, count, every_k or 1))
    if n is not None and len(picked) > n:
        picked = sorted(random.Random(seed).sample(picked, n))
    return picked


def hub_rows(dataset: Dataset, columns: list[str]) -> list[Row]:
    """Rows of a hub split restricted to ``columns`` (cheap: other columns are never decoded)."""
    values = dataset.select_columns(list(dict.fromkeys(columns))).to_list()
    return [Row(i, v) for i, v in enumerate(values, start=1)]


def build_dataset(raw: RawSplit, keep: list[int], inputs: list[str], references: list[list[str]]) -> Dataset:
    """A ``Dataset`` of the kept rows: the original columns, then ``input`` and ``references``."""
    import datasets
    import pyarrow as pa

    new = {"input": pa.array(inputs, pa.string()), "references": pa.array(references, pa.list_(pa.string()))}
    if raw.dataset is not None:
        return _from_hub(raw.dataset, keep, new)
    kept = [raw.rows[i].values or {} for i in keep]
    mapping: dict[str, Any] = {c: [v.get(c) for v in kept] for c in raw.columns if c not in NEW_COLUMNS}
    try:
        return datasets.Dataset.from_dict({**mapping, **new}, **_mixed_types_option())
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        column, reason = _unstorable_column(mapping), str(exc).splitlines()[0]
        what = f"column '{column}'" if column else "the rows"
        raise DataError(f"{raw.origin}: cannot store {what} in a table ({reason}); drop or fix that column") from None


@lru_cache(maxsize=1)
def _mixed_types_option() -> dict[str, str]:
    """Store a column whose rows mix value types as JSON (datasets >= 4.7); older versions refuse it."""
    import datasets

    supported = "on_mixed_types" in inspect.signature(datasets.Dataset.from_dict).parameters
    return {"on_mixed_types": "use_json"} if supported else {}


def _unstorable_column(mapping: dict[str, list[Any]]) -> str | None:
    """The first column Arrow refuses on its own (to name it in the error), if any."""
    import datasets

    for column, values in mapping.items():
        try:
            datasets.Dataset.from_dict({column: values}, **_mixed_types_option())
        except Exception:  # noqa: BLE001 - any refusal names the column; the caller reports the reason
            return column
    return None


def _from_hub(dataset: Dataset, keep: list[int], new: dict[str, Any]) -> Dataset:
    """Kept rows of a hub split with its features (class labels etc.) intact, plus the new columns."""
    import datasets

    table = dataset.with_format("arrow")[keep]
    mapping = {c: table.column(c) for c in table.column_names if c not in NEW_COLUMNS}
    features = {c: dataset.features[c] for c in mapping}
    features.update(input=datasets.Value("string"), references=datasets.List(datasets.Value("string")))
    return datasets.Dataset.from_dict({**mapping, **new}, features=datasets.Features(features))
