"""Fixtures for the tuning tests: tiny DialogSum-shaped rows and a fresh (trainable) builtin per call."""

from __future__ import annotations

import pytest


def make_rows(n: int, start: int = 0) -> list[dict]:
    return [{"input": f"#Person1#: hello number {i}, how are you today?\n#Person2#: fine, thanks {'a ' * (i % 5)}",
             "references": [f"#Person1# greets #Person2# {i}."]} for i in range(start, start + n)]


@pytest.fixture
def rows():
    return make_rows(12), make_rows(4, start=100)


@pytest.fixture
def fresh():
    """``fresh(name)``: a newly built builtin model (training changes it, so never the session cache)."""
    from llmcycle.models import load_model

    return lambda name: load_model(f"builtin:{name}")


@pytest.fixture
def quick():
    """A few-step config: big learning rate so every trained parameter visibly moves."""
    return {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-2, "log_every": 1, "save_every": 100,
            "max_input_tokens": 48, "max_target_tokens": 16}
