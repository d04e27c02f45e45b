"""The context budget: shots are dropped before any truncation, truncation keeps the instruction, all reported."""

from __future__ import annotations

import pytest

from llmcycle.prompts import (
    FirstShots,
    PromptError,
    build_prompt,
    build_prompts,
    count_tokens,
    get_template,
    resolve_max_tokens,
)

INSTRUCTION_HEAD = "Summarize the following conversation.\n\n"
INSTRUCTION_TAIL = "\n\nSummary:"


def n_tokens(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=True)["input_ids"])


def test_shots_are_dropped_last_first_before_any_truncation(tok, pool, row) -> None:
    shots = FirstShots(pool, 3)
    full = build_prompt("instruction", row, tokenizer=tok, shots=shots)
    one_shot = build_prompt("instruction", row, tokenizer=tok, shots=FirstShots(pool, 1))
    assert full.shot_ids == [0, 1, 2] and full.n_tokens > one_shot.n_tokens
    fitted = build_prompt("instruction", row, tokenizer=tok, shots=shots, max_input_tokens=one_shot.n_tokens)
    assert fitted.shot_ids == [0] and fitted.shots_dropped == [1, 2]  # the last chosen go first
    assert not fitted.input_truncated and fitted.tokens_removed == 0
    assert fitted.text == one_shot.text and fitted.n_tokens == one_shot.n_tokens
    assert fitted.n_tokens_full == full.n_tokens and fitted.shots_requested == 3 and fitted.was_cut


def test_input_is_truncated_only_when_zero_shots_do_not_fit(tok, pool, row) -> None:
    zero = build_prompt("instruction", row, tokenizer=tok)
    limit = zero.n_tokens - 6
    built = build_prompt("instruction", row, tokenizer=tok, shots=FirstShots(pool, 3), max_input_tokens=limit)
    assert built.shots_dropped == [0, 1, 2] and built.shot_ids == []
    assert built.input_truncated and built.tokens_removed >= 6
    assert built.text.startswith(INSTRUCTION_HEAD) and built.text.endswith(INSTRUCTION_TAIL)  # instruction intact
    kept = built.text[len(INSTRUCTION_HEAD):-len(INSTRUCTION_TAIL)]
    assert kept and row["dialogue"].startswith(kept) and kept != row["dialogue"]  # cut from the end, verbatim
    assert built.n_tokens == n_tokens(tok, built.text) <= limit == built.max_tokens
    removed = count_tokens(tok, row["dialogue"], False) - count_tokens(tok, kept, False)
    assert built.tokens_removed == removed


def test_default_budget_is_the_models_limit_819_tokens_never_reach_a_512_model(tok, row) -> None:
    turn = "#Person1#: Could you tell me more about the delivery options for the sofa I ordered last week?\n"
    long_row = dict(row, dialogue=turn * 40, input=turn * 40)
    assert n_tokens(tok, get_template("instruction").render(long_row)) > 512
    built = build_prompt("instruction", long_row, tokenizer=tok)
    assert built.max_tokens == 512 and built.max_tokens_source == "tokenizer.model_max_length"
    assert built.n_tokens_full > 512 and built.input_truncated
    assert built.n_tokens == n_tokens(tok, built.text) <= 512
    assert built.n_tokens >= 500  # fills the budget, does not over-cut
    assert built.text.endswith(INSTRUCTION_TAIL)


def test_truncation_keeps_other_fields_of_a_multi_field_template(tok) -> None:
    qa_row = {"context": "The museum opens at nine. " * 30, "question": "When does the museum open?",
              "answer": "At nine."}
    built = build_prompt("qa", qa_row, tokenizer=tok, max_input_tokens=60)
    assert built.input_truncated and built.n_tokens <= 60
    assert built.text.endswith("\n\nQuestion: When does the museum open?\n\nAnswer:")


def test_a_budget_smaller_than_the_instruction_is_an_error(tok, row) -> None:
    with pytest.raises(PromptError, match=r"template 'instruction' takes \d+ tokens with an empty \{dialogue\}, "
                                          r"more than max_input_tokens=5"):
        build_prompt("instruction", row, tokenizer=tok, max_input_tokens=5)


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "512"])
def test_bad_max_input_tokens(tok, row, bad) -> None:
    with pytest.raises(PromptError, match="max_input_tokens must be a positive integer"):
        build_prompt("instruction", row, tokenizer=tok, max_input_tokens=bad)


def test_sentinel_model_max_length_is_capped_and_says_so(tok) -> None:
    import copy

    unlimited = copy.copy(tok)
    unlimited.model_max_length = int(1e30)
    limit, source = resolve_max_tokens(unlimited)
    assert limit == 2048 and "reports no limit" in source and "set max_input_tokens" in source
    assert resolve_max_tokens(unlimited, 300) == (300, "max_input_tokens")


def test_batch_summary_counts_every_cut(tok, pool, row, make_row) -> None:
    long = make_row(row["dialogue"] * 12, row["summary"], "museum")
    rows = [row, long]
    short_limit = build_prompt("instruction", row, tokenizer=tok, shots=FirstShots(pool, 1)).n_tokens
    batch = build_prompts("instruction", rows, tokenizer=tok, shots=FirstShots(pool, 2), max_input_tokens=short_limit)
    first, second = batch.prompts
    assert first.shots_dropped == [1] and not first.input_truncated
    assert second.shots_dropped == [0, 1] and second.input_truncated
    summary = batch.summary
    assert (summary.n_prompts, summary.n_with_dropped_shots, summary.shots_dropped, summary.n_truncated) == (2, 2, 3, 1)
    assert summary.tokens_removed == second.tokens_removed > 0 and summary.max_n_tokens <= short_limit
    assert "2 dropped shots (3 in all); 1 had the input truncated" in summary.describe()
    assert batch.texts == [first.text, second.text] and first.to_dict()["shots_dropped"] == [1]
