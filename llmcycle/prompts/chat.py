"""The one chat path: every stage renders an instruct model's turns through its tokenizer's chat template.

Chat models are tuned on their own turn markup (``<|im_start|>``, ``[INST]``, ...); the tokenizer
carries it as a Jinja ``chat_template``. Prompt lab, generate, evaluate, tune, PPO, DPO,
constitutional and serve all go through these functions, so a model is trained on the very tokens it
is later prompted with:

* ``resolve_chat`` / ``uses_chat``: whether a model is used in chat form (``model.chat: auto|always|never``;
  ``auto`` = when its tokenizer has a chat template);
* ``chat_prompt``: messages rendered with the assistant turn opened (what generation continues);
* ``user_prompt``: one plain text as a user turn (PPO queries, served completions of a template);
* ``encode_conversation``: token ids and labels of a whole conversation, the loss on assistant turns
  only, each turn's labels ending at its end-of-turn token (where the model must learn to stop);
* ``conversation_turns``: OpenAI-shaped ``messages`` rows checked, with a clear error naming the turn.

Rendered text is tokenised like any prompt (``tokenizer(text)``, special tokens added); a template
that writes the bos itself (Llama 3's) would then get it twice, so ``chat_prompt`` drops a leading
bos the tokenizer adds anyway.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from llmcycle.data.conversation import conversation_turns
from llmcycle.models.chat import ChatMode, has_chat_template, resolve_chat, uses_chat
from llmcycle.prompts.registry import get_template
from llmcycle.prompts.templates import PromptError, PromptTemplate

__all__ = ["ChatMode", "chat_messages", "chat_prompt", "plain_chat_prompt", "conversation_turns", "encode_conversation",
           "has_chat_template", "render_chat", "resolve_chat", "user_prompt", "uses_chat"]



def _adds_bos(tokenizer: Any) -> bool:
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("x", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos


def _render(tokenizer: Any, messages: Sequence[Mapping[str, str]], generation_prompt: bool) -> str:
    if not has_chat_template(tokenizer):
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise PromptError(f"the tokenizer of {name} has no chat template, so chat prompts cannot be built; use a "
                          "chat model (one whose tokenizer_config.json has a chat_template) or set model.chat: never")
    try:
        text = tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=generation_prompt,
                                             tokenize=False)
    except Exception as exc:  # jinja errors: e.g. templates that refuse a system turn
        raise PromptError(f"the chat template of {getattr(tokenizer, 'name_or_path', '')} failed on these messages "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and _adds_bos(tokenizer):
        text = text[len(bos):]  # tokenising adds it: keep one
    return text


def chat_prompt(tokenizer: Any, messages: Sequence[Mapping[str, str]], generation_prompt: bool = True) -> str:
    """``messages`` rendered by the chat template with the assistant's turn opened for generation (unless
    ``generation_prompt`` is False: the last message, an assistant's, is then continued as it stands)."""
    return _render(tokenizer, messages, generation_prompt)


def plain_chat_prompt(messages: Sequence[Mapping[str, str]], causal: bool = True) -> str:
    """Turns as one plain prompt for a model without chat form: a single user turn is its text; several are
    ``role: content`` blocks separated by blank lines, ending in ``assistant:`` for a causal model."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
    return text + "\n\nassistant:" if causal else text


def user_prompt(tokenizer: Any, text: str, system: str | None = None) -> str:
    """A plain text as the user turn of a chat prompt (PPO queries, a template's prompt served as chat)."""
    return chat_prompt(tokenizer, ([{"role": "system", "content": system}] if system else [])
                       + [{"role": "user", "content": text}])


def chat_messages(template: PromptTemplate, row: Mapping[str, Any], system: str | None = None,
                  shots: Sequence[Mapping[str, Any]] = (),
                  overrides: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """``[system?, (user shot, assistant reference)*, user query]`` as role/content messages. A row holding a
    conversation (``messages``, as ``load_data`` keeps it) is its turns before the last assistant reply."""
    turns = row.get("messages") if overrides is None else None
    if isinstance(turns, list) and turns:
        checked = conversation_turns(turns)
        return checked[:-1] if checked[-1]["role"] == "assistant" else checked
    messages = [{"role": "system", "content": system}] if system else []
    for shot in shots:
        messages.append({"role": "user", "content": template.render(shot)})
        messages.append({"role": "assistant", "content": template.render_target(shot).strip()})
    messages.append({"role": "user", "content": template.render(row, overrides)})
    return messages


def render_chat(template: PromptTemplate | str, row: Mapping[str, Any], tokenizer: Any,
                system: str | None = None, shots: Sequence[Mapping[str, Any]] = (),
                overrides: Mapping[str, str] | None = None) -> str:
    """The chat-formatted prompt text of a template and row, ending with the assistant's turn opened.

    Raises ``PromptError`` when the tokenizer has no chat template (base and seq2seq models, and
    every builtin but ``builtin:tiny-chat``): use a plain template for those.
    """
    return chat_prompt(tokenizer, chat_messages(get_template(template), row, system, shots, overrides))


def encode_conversation(tokenizer: Any, messages: Sequence[Mapping[str, str]], stop_ids: Iterable[int]
                        ) -> tuple[list[int], list[int]]:
    """Token ids of a whole conversation and its labels: -100 everywhere but on the assistant turns, each of
    which is labelled from its first token up to and including its end-of-turn token (the first of
    ``stop_ids`` in the turn; the markup after it, such as a newline, is not learnt).

    The turn boundaries come from rendering the conversation up to each assistant turn with the generation
    prompt: the assistant's tokens are what follows that prompt, exactly what generation continues from.
    A template whose renderings are not prefixes of each other cannot be masked this way; that is an error.
    """
    stops = set(stop_ids)
    full = _render(tokenizer, messages, False)
    spans = []
    for i, turn in enumerate(messages):
        if turn["role"] != "assistant":
            continue
        before, upto = _render(tokenizer, messages[:i], True), _render(tokenizer, messages[:i + 1], False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise PromptError(f"the chat template of {getattr(tokenizer, 'name_or_path', '')} renders turn {i} "
                              "differently once later turns follow, so its assistant tokens cannot be found; "
                              "train this model with model.chat: never and a plain template")
        spans.append((len(before), len(upto)))
    enc = tokenizer(full, add_special_tokens=True, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    labels = [-100] * len(ids)
    for start, end in spans:
        inside = [k for k, (a, b) in enumerate(offsets) if b > a and start <= a < end]
        for k in inside:
            labels[k] = ids[k]
            if ids[k] in stops:
                break
    return ids, labels
