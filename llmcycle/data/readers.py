"""Parse local data files (JSON Lines, JSON, CSV, Parquet) into rows that remember where they came from.

Every reader takes the file's display name and its bytes (so package data read through
``importlib.resources`` and files on disk go through the same code) and returns ``RawSplit``s.
A row that cannot be parsed (malformed JSON line, a line that is not an object, a CSV record
with the wrong number of fields) is kept as a ``Row`` with a ``problem``, so the caller decides
whether it stops the load or is skipped and counted. Problems that make the whole file
unreadable (not UTF-8, empty, not Parquet) raise ``DataError`` at once.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from llmcycle.core.errors import DataError

KINDS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
"""File suffix -> reader kind; the file types ``load_data`` reads."""


class Row(NamedTuple):
    """One row of a split: its 1-based line (or row number) and its values, or why it is unusable."""

    number: int
    values: dict[str, Any] | None
    problem: str | None = None


@dataclass
class RawSplit:
    """The rows of one split as read, before column mapping, checks and sampling."""

    origin: str
    rows: list[Row]
    by_line: bool = True  # locations read "<origin>:<line>"; else "<origin>: row <n>"
    columns: list[str] = field(default_factory=list)
    dataset: Any = None  # a hub ``datasets.Dataset``, kept so its features survive

    def __post_init__(self) -> None:
        if not self.columns:
            self.columns = list(dict.fromkeys(k for row in self.rows if row.values for k in row.values))

    def where(self, row: Row) -> str:
        """Where ``row`` lives, as used at the start of error messages."""
        return f"{self.origin}:{row.number}" if self.by_line else f"{self.origin}: row {row.number}"


def type_name(value: Any) -> str:
    """A JSON-ish name for a value's type, for messages."""
    return {dict: "object", list: "list", bool: "boolean", float: "number", int: "integer"}.get(
        type(value), type(value).__name__
    )


def decode_utf8(name: str, data: bytes) -> str:
    """Decode UTF-8 (a leading BOM is dropped); on failure name the line and byte offset."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = data.count(b"\n", 0, offset) + 1
        raise DataError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[offset]:02x} at byte offset {offset}); "
            "re-save the file as UTF-8"
        ) from None


def read_jsonl(name: str, data: bytes) -> dict[str | None, RawSplit]:
    """One JSON object per line; blank lines are ignored."""
    rows: list[Row] = []
    for number, line in enumerate(decode_utf8(name, data).split("\n"), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            rows.append(Row(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if isinstance(value, dict):
            rows.append(Row(number, value))
        else:
            rows.append(Row(number, None, f"not a JSON object (got {type_name(value)}); each line must be {{...}}"))
    if not rows:
        raise DataError(f"{name}: empty file (no rows); expected one JSON object per line")
    return {None: RawSplit(name, rows)}


def read_jsonl_objects(path: Path, what: str | None = None) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL file, strictly: a missing file,
    wrong encoding, empty file or bad line raises ``DataError`` naming the file and line.

    ``what`` names the file's role in the missing-file message (``task.yaml: data``)."""
    if not path.is_file():
        raise DataError(f"{what + ': ' if what else ''}no such file {path}")
    split = read_jsonl(str(path), path.read_bytes())[None]
    for row in split.rows:
        if row.problem is not None:
            raise DataError(f"{split.where(row)}: {row.problem}")
    return [(row.number, row.values) for row in split.rows if row.values is not None]


def _json_rows(origin: str, items: list[Any]) -> RawSplit:
    """Rows of a JSON array; items that are not objects are unusable rows."""
    if not items:
        raise DataError(f"{origin}: no rows (the list is empty)")
    rows = [
        Row(i, item) if isinstance(item, dict) else Row(i, None, f"not a JSON object (got {type_name(item)})")
        for i, item in enumerate(items, start=1)
    ]
    return RawSplit(origin, rows, by_line=False)


def read_json(name: str, data: bytes, split_key: Callable[[str], str | None]) -> dict[str | None, RawSplit]:
    """A list of objects, ``{"data": [...]}``, or ``{"train": [...], "test": [...]}`` (one list per split).

    ``split_key`` maps a top-level key to its split name (None when it is not a split word).
    """
    text = decode_utf8(name, data)
    if not text.strip():
        raise DataError(f"{name}: empty file (no rows)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "; if it holds one object per line, name it .jsonl" if exc.msg == "Extra data" else ""
        raise DataError(f"{name}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}){hint}") from None
    if isinstance(value, list):
        return {None: _json_rows(name, value)}
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        return {None: _json_rows(name, value["data"])}
    if isinstance(value, dict) and value and all(split_key(k) and isinstance(v, list) for k, v in value.items()):
        return {k: _json_rows(f"{name} ({k})", v) for k, v in value.items()}
    got = f"an object with keys {', '.join(map(repr, value))}" if isinstance(value, dict) else type_name(value)
    raise DataError(
        f"{name}: top level must be a list of objects, {{\"data\": [...]}} or {{\"train\": [...], "
        f"\"test\": [...]}} (one list per split); got {got}"
    )


def read_csv(name: str, data: bytes) -> dict[str | None, RawSplit]:
    """Comma-separated values with a header line; line numbers count physical lines."""
    reader = csv.reader(io.StringIO(decode_utf8(name, data), newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise DataError(f"{name}: empty file (no header line and no rows)")
        duplicates = sorted({c for c in header if header.count(c) > 1})
        if duplicates:
            raise DataError(f"{name}:1: duplicate column name(s) in the header: {', '.join(duplicates)}")
        rows: list[Row] = []
        start = reader.line_num + 1
        for fields in reader:
            number, start = start, reader.line_num + 1
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                rows.append(Row(number, None, f"has {len(fields)} fields, the header has {len(header)}"))
            else:
                rows.append(Row(number, dict(zip(header, fields))))
    except csv.Error as exc:
        raise DataError(f"{name}:{reader.line_num}: not valid CSV ({exc})") from None
    if not rows:
        raise DataError(f"{name}: no rows (only a header line)")
    return {None: RawSplit(name, rows, columns=list(header))}


def read_parquet(name: str, data: bytes) -> dict[str | None, RawSplit]:
    """A Parquet file, read with pyarrow; locations are row numbers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
        values = table.to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{name}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    if not values:
        raise DataError(f"{name}: no rows")
    rows = [Row(i, v) for i, v in enumerate(values, start=1)]
    return {None: RawSplit(name, rows, by_line=False, columns=list(table.column_names))}


def read_bytes(kind: str, name: str, data: bytes, split_key: Callable[[str], str | None]) -> dict[str | None, RawSplit]:
    """Dispatch on ``kind`` (a value of ``KINDS``); the key None means "the file's own split"."""
    if kind == "jsonl":
        return read_jsonl(name, data)
    if kind == "json":
        return read_json(name, data, split_key)
    if kind == "csv":
        return read_csv(name, data)
    if kind == "parquet":
        return read_parquet(name, data)
    raise ValueError(f"unknown reader kind {kind!r}")  # a bug: kinds come from KINDS
