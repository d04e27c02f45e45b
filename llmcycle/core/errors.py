"""One exception type for every error a user can fix.

Stage code raises ``LLMCycleError`` (or a subclass) with a message that names the field, file,
line or model source at fault and says what to do instead. The CLI prints the message on one
line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LLMCycleError(ValueError):
    """A problem with the user's input (file, row, config field, model source)."""


class ModelSourceError(LLMCycleError):
    """A model source that cannot be resolved (unknown builtin, missing dir, hub unreachable)."""


class DataError(LLMCycleError):
    """A data file or row that cannot be read as asked."""


class ConfigError(LLMCycleError):
    """A config or recipe value that fails validation."""


class OptimizeError(LLMCycleError):
    """An optimisation that cannot run here (missing GPU or package, unsupported model)."""
