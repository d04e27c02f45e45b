"""Whether a model is used in chat form: ``model.chat: auto|always|never`` resolved against its tokenizer.

A property of the loaded model (``LoadedModel.chat``), so every stage that receives it renders prompts
and training examples the same way (``llmcycle.prompts.chat`` does the rendering).
"""

from __future__ import annotations

from typing import Any, Literal

from llmcycle.core.errors import ConfigError

ChatMode = Literal["auto", "always", "never"]


def has_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_chat(tokenizer: Any, mode: ChatMode | bool | None, source: str = "", field: str = "model.chat") -> bool:
    """Whether a model with ``tokenizer`` is used in chat form: ``auto`` (or None) when it has a chat template,
    ``always`` or True (a ``ConfigError`` naming ``field`` when it has none), ``never`` or False."""
    if mode in (None, "auto"):
        return has_chat_template(tokenizer)
    if mode in ("never", False):
        return False
    if mode not in ("always", True):
        raise ConfigError(f"{field}: unknown value {mode!r}; valid: auto, always, never")
    if not has_chat_template(tokenizer):
        raise ConfigError(f"{field}: 'always', but the tokenizer of {source or 'the model'} has no chat template; "
                          "use a chat model (builtin:tiny-chat offline) or chat: auto / never")
    return True


def uses_chat(loaded: Any) -> bool:
    """Whether a ``LoadedModel`` is used in chat form (its ``chat``; None = auto, from its tokenizer)."""
    flag = getattr(loaded, "chat", None)
    return has_chat_template(loaded.tokenizer) if flag is None else bool(flag)
