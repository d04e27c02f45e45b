"""Fixtures for the evaluation tests: the real DialogSum test split (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DIALOGSUM = (REPO / ".." / "shared" / "data" / "dialogsum").resolve()


@pytest.fixture(scope="session")
def dialogsum_test():
    """The 500 DialogSum test rows (``dialogue``, ``summary1..3``, ``references``), via ``load_data``."""
    if not (DIALOGSUM / "dialogsum.test.jsonl").is_file():
        pytest.skip(f"real DialogSum data not found at {DIALOGSUM} (it lives beside the project, never inside)")
    from llmcycle.data import load_data

    return load_data(DIALOGSUM / "dialogsum.test.jsonl")["test"]
