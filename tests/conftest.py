"""Shared fixtures: builtin models built once per session (seconds each), the DialogSum path."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DIALOGSUM_DIR = (REPO / ".." / "shared" / "data" / "dialogsum").resolve()

needs_dialogsum = pytest.mark.skipif(
    not (DIALOGSUM_DIR / "dialogsum.test.jsonl").is_file(),
    reason=f"real DialogSum data not found at {DIALOGSUM_DIR} (it lives beside the project, never inside)",
)


@pytest.fixture(scope="session")
def load_builtin():
    """``load_builtin(name)``: a builtin model, loaded once per session (do not train it in place)."""
    from llmcycle.models import load_model

    cache: dict[str, object] = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_model(f"builtin:{name}")
        return cache[name]

    return get


@pytest.fixture(scope="session")
def minilm(load_builtin):
    return load_builtin("minilm-seq2seq")
