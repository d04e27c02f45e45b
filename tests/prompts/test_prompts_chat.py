"""Chat prompts: the tokenizer's chat template wraps the rendered template; no chat template is a clear error."""

from __future__ import annotations

import copy

import pytest

from llmcycle.prompts import IndexShots, PromptError, build_prompt, get_template, has_chat_template, render_chat

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture()
def chat_tok(tok):
    chatty = copy.deepcopy(tok)
    chatty.chat_template = CHAT_TEMPLATE
    return chatty


def test_builtin_tokenizer_has_no_chat_template_and_says_so(tok, row) -> None:
    assert not has_chat_template(tok)
    with pytest.raises(PromptError, match=r"has no chat template, so chat prompts cannot be built; use a chat model"):
        render_chat("instruction", row, tok)
    with pytest.raises(PromptError, match="has no chat template"):
        build_prompt("instruction", row, tokenizer=tok, chat=True)


def test_chat_template_wraps_system_and_user_turns(chat_tok, row) -> None:
    text = render_chat("instruction", row, chat_tok, system="You summarise support chats.")
    user = get_template("instruction").render(row)
    assert text == f"<|system|>\nYou summarise support chats.\n<|user|>\n{user}\n<|assistant|>\n"


def test_chat_shots_are_user_assistant_turns_within_the_budget(chat_tok, pool, row) -> None:
    full = build_prompt("instruction", row, tokenizer=chat_tok, shots=IndexShots(pool, [1, 2]), chat=True)
    assert full.text.count("<|user|>") == 3 and full.text.count("<|assistant|>") == 3
    assert f"<|assistant|>\n{pool[1]['summary']}\n<|user|>" in full.text
    one = build_prompt("instruction", row, tokenizer=chat_tok, shots=IndexShots(pool, [1]), chat=True)
    fitted = build_prompt("instruction", row, tokenizer=chat_tok, shots=IndexShots(pool, [1, 2]), chat=True,
                          max_input_tokens=one.n_tokens)
    assert fitted.shots_dropped == [2] and fitted.text == one.text
    tight = build_prompt("instruction", row, tokenizer=chat_tok, chat=True, max_input_tokens=one.n_tokens // 3)
    assert tight.input_truncated and tight.n_tokens <= one.n_tokens // 3
    assert tight.text.startswith("<|user|>\nSummarize the following conversation.")
    assert tight.text.endswith("\n\nSummary:\n<|assistant|>\n")
