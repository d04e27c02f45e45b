"""Input checks shared by the metrics: every message names the argument and, where it helps, the index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmcycle.core.errors import LLMCycleError


def check_texts(texts: Any, name: str = "predictions", allow_empty: bool = False) -> list[str]:
    """``texts`` as a list of strings; a lone string, a non-sequence or a non-string item is an error."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence) and not hasattr(texts, "__iter__"):
        raise LLMCycleError(f"{name}: expected a list of strings, got {type(texts).__name__}")
    items = list(texts)
    if not items and not allow_empty:
        raise LLMCycleError(f"{name}: is empty; pass at least one text")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise LLMCycleError(f"{name}[{i}]: expected a string, got {type(t).__name__}")
    return items


def check_references(references: Any, n: int, name: str = "references") -> list[list[str]]:
    """References as one list of strings per example (a string becomes a one-item list).

    ``n`` is the number of predictions; a different number of references is an error naming both.
    """
    if isinstance(references, (str, bytes)) or not hasattr(references, "__iter__"):
        raise LLMCycleError(f"{name}: expected a list (one item per prediction), got {type(references).__name__}")
    refs = list(references)
    if len(refs) != n:
        raise LLMCycleError(f"{name}: {len(refs)} items but predictions has {n}; pass one per prediction")
    out: list[list[str]] = []
    for i, r in enumerate(refs):
        if isinstance(r, str):
            out.append([r])
            continue
        if isinstance(r, bytes) or not isinstance(r, Sequence):
            raise LLMCycleError(f"{name}[{i}]: expected a string or a list of strings, got {type(r).__name__}")
        if len(r) == 0:
            raise LLMCycleError(f"{name}[{i}]: empty list of references; give at least one")
        for j, s in enumerate(r):
            if not isinstance(s, str):
                raise LLMCycleError(f"{name}[{i}][{j}]: expected a string, got {type(s).__name__}")
        out.append(list(r))
    return out


def check_choice(value: Any, name: str, valid: Sequence[str]) -> str:
    """``value`` if it is one of ``valid``; else an error listing them."""
    if value not in valid:
        raise LLMCycleError(f"{name}: unknown value {value!r}; valid: {', '.join(map(str, valid))}")
    return value


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (bools are not ints here)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LLMCycleError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value
