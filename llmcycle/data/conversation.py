"""Conversations in OpenAI's shape: ``[{"role": "user", "content": "..."}, {"role": "assistant", ...}]``.

A data set whose input column holds such lists (``input_column: messages``) is conversational: its
normalised ``input`` is the last user turn and its reference the final assistant turn, while the turns
themselves stay in their column for the chat path (``llmcycle.prompts.chat``), which trains on every
assistant turn and prompts with the turns before the last reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROLES = ("system", "user", "assistant", "tool")


def conversation_turns(turns: Any, where: str = "messages") -> list[dict[str, str]]:
    """OpenAI-shaped turns (``[{"role": ..., "content": ...}, ...]``) checked and copied; ``ValueError`` naming
    the turn otherwise."""
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"{where}: a conversation is a non-empty list of {{role, content}} turns")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping):
            raise ValueError(f"{where}[{i}]: a turn is a mapping with role and content, got {type(turn).__name__}")
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise ValueError(f"{where}[{i}].role: {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"{where}[{i}].content: must be a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    if not any(t["role"] == "user" for t in out):
        raise ValueError(f"{where}: the conversation has no user turn")
    return out


def is_conversation(value: Any) -> bool:
    """Whether a column value looks like a conversation (a list of mappings)."""
    return isinstance(value, list) and bool(value) and all(isinstance(t, Mapping) for t in value)


def conversation_fields(turns: Any, where: str = "messages") -> tuple[str, list[str]]:
    """``(input, references)`` of a conversation: its last user turn, and its final assistant turn when it ends
    with one (``ValueError`` naming the turn when it is malformed)."""
    checked = conversation_turns(turns, where)
    reply = [checked[-1]["content"]] if checked[-1]["role"] == "assistant" and checked[-1]["content"].strip() \
        else []
    user = next(t["content"] for t in reversed(checked) if t["role"] == "user")
    return user, reply
