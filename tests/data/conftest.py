"""Fixtures for the data tests: small files written under tmp_path, and the real DialogSum copy."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DIALOGSUM = (REPO / ".." / "shared" / "data" / "dialogsum").resolve()

try:  # the package is not installed in every checkout; the tests run against this tree
    import llmcycle  # noqa: F401
except ImportError:  # pragma: no cover - depends on how pytest was started
    sys.path.insert(0, str(REPO))


def dialogue_rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    """``count`` DialogSum-shaped rows, fname d<start>..d<start+count-1>."""
    return [
        {
            "fname": f"d{i}",
            "dialogue": f"#Person1#: Hello, number {i}.\n#Person2#: Hi there.",
            "summary": f"#Person1# greets #Person2# ({i}).",
            "topic": "greeting",
        }
        for i in range(start, start + count)
    ]


@pytest.fixture
def make_rows() -> Callable[..., list[dict[str, Any]]]:
    """The ``dialogue_rows`` factory, as a fixture (test modules do not import conftest)."""
    return dialogue_rows


@pytest.fixture
def write_text(tmp_path: Path) -> Callable[..., Path]:
    """Write ``text`` (str, UTF-8) or bytes to ``tmp_path/name`` and return the path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_jsonl(write_text: Callable[..., Path]) -> Callable[..., Path]:
    """Write rows (dicts, or raw strings written as they are) as JSON Lines."""

    def write(name: str, rows: list[Any]) -> Path:
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
        return write_text(name, "\n".join(lines) + "\n")

    return write


@pytest.fixture(scope="session")
def dialogsum_dir() -> Path:
    """The real DialogSum copy beside the repo (../shared/data/dialogsum); skip when absent."""
    if not (DIALOGSUM / "dialogsum.train.jsonl").is_file():
        pytest.skip(f"real DialogSum data not found at {DIALOGSUM} (see GUIDE.md section 4)")
    return DIALOGSUM
