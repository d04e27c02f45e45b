"""Argument checks shared by the estimators: each error names the argument at fault."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from llmcycle.core.errors import LLMCycleError


def positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> float:
    """``value`` as a number > 0 (or >= 0); LLMCycleError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LLMCycleError(f"{name}: must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise LLMCycleError(f"{name}: must be {bound}, got {value!r}")
    if integer and value != int(value):
        raise LLMCycleError(f"{name}: must be a whole number, got {value!r}")
    return value


def choice(name: str, value: Any, valid: Iterable[str]) -> str:
    """``value`` if it is one of ``valid``; LLMCycleError listing the valid names otherwise."""
    valid = tuple(valid)
    if value not in valid:
        raise LLMCycleError(f"{name}: unknown value {value!r}; valid: {', '.join(valid)}")
    return value
