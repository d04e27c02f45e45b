"""Reading prompts from a file and turning results into JSONL records (for ``llmcycle generate``).

* ``.txt``: one prompt per non-blank line.
* ``.jsonl``: one JSON object per line; the prompt is its ``input_column`` field (default ``input``).
  A line holding a bare JSON string is a prompt too.

Errors name the file and line; an empty file is an error, never an empty output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from llmcycle.core.errors import DataError
from llmcycle.generation.engine import GenerationResult


def read_inputs(path: str | Path, input_column: str = "input") -> list[str]:
    """The prompts in a ``.txt`` or ``.jsonl`` file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such input file")
    suffix = p.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise DataError(f"{p}: unsupported input file type {suffix or '(none)'}; use .txt (one prompt per line) "
                        "or .jsonl (one object per line)")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{p}: not UTF-8 text") from None
    prompts = _read_txt(lines) if suffix == ".txt" else _read_jsonl(p, lines, input_column)
    if not prompts:
        raise DataError(f"{p}: no prompts in the file (it is empty or blank)")
    return prompts


def _read_txt(lines: list[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip()]


def _read_jsonl(p: Path, lines: list[str], column: str) -> list[str]:
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}:{number}: not valid JSON ({exc.msg})") from None
        if isinstance(row, dict):
            if column not in row:
                raise DataError(f"{p}:{number}: no {column!r} field (fields: {', '.join(map(str, row)) or 'none'}); "
                                "pick the prompt field with --input-column")
            row = row[column]
        if not isinstance(row, str) or not row.strip():
            raise DataError(f"{p}:{number}: the prompt must be a non-empty string, got {json.dumps(row)[:60]}")
        prompts.append(row)
    return prompts


def result_records(results: Sequence[GenerationResult], inputs: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One JSON-able record per input: input, output, finish reason, token counts (and every output when several).

    ``inputs``: the texts the user gave, when the model was prompted with something else (a chat model's prompt
    is the text as a user turn): ``input`` is then the user's text and ``prompt`` what the model read.
    """
    records = []
    for i, r in enumerate(results):
        first = r.outputs[0]
        rec: dict[str, Any] = {"index": r.index, "input": r.input if inputs is None else inputs[i],
                               "output": first.text, "finish_reason": first.finish_reason,
                               "new_tokens": first.new_tokens, "input_tokens": r.input_tokens}
        if inputs is not None and inputs[i] != r.input:
            rec["prompt"] = r.input
        if r.truncated:
            rec["truncated"] = True
        if len(r.outputs) > 1:
            rec["outputs"] = [{"text": o.text, "finish_reason": o.finish_reason, "new_tokens": o.new_tokens}
                              for o in r.outputs]
        records.append(rec)
    return records
