"""Chat prompts: a template's text as the user turn, wrapped by the tokenizer's own chat template.

Chat models are tuned on their own turn markup (``<|user|>``, ``[INST]``, ...); the tokenizer
carries it as a Jinja ``chat_template``. Shots become earlier user / assistant turns, which is how
chat models expect solved examples.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from llmcycle.prompts.registry import get_template
from llmcycle.prompts.templates import PromptError, PromptTemplate


def has_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_messages(template: PromptTemplate, row: Mapping[str, Any], system: str | None = None,
                  shots: Sequence[Mapping[str, Any]] = (),
                  overrides: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """``[system?, (user shot, assistant reference)*, user query]`` as role/content messages."""
    messages = [{"role": "system", "content": system}] if system else []
    for shot in shots:
        messages.append({"role": "user", "content": template.render(shot)})
        messages.append({"role": "assistant", "content": template.render_target(shot).strip()})
    messages.append({"role": "user", "content": template.render(row, overrides)})
    return messages


def render_chat(template: PromptTemplate | str, row: Mapping[str, Any], tokenizer: Any,
                system: str | None = None, shots: Sequence[Mapping[str, Any]] = (),
                overrides: Mapping[str, str] | None = None) -> str:
    """The chat-formatted prompt text, ending with the assistant's turn opened for generation.

    Raises ``PromptError`` when the tokenizer has no chat template (base and seq2seq models, and
    every builtin model): use a plain template for those.
    """
    template = get_template(template)
    if not has_chat_template(tokenizer):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise PromptError(f"the tokenizer of {name} has no chat template, so chat prompts cannot be built; "
                          "use a chat model (one whose tokenizer_config.json has a chat_template) or a plain "
                          f"template such as '{template.name}' without chat")
    messages = chat_messages(template, row, system, shots, overrides)
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja errors: e.g. templates that refuse a system turn
        raise PromptError(f"the chat template of {getattr(tokenizer, 'name_or_path', '')} failed on these messages "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
