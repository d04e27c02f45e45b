"""Instruction data: templates, label masking, dynamic padding, truncation report."""

from __future__ import annotations

import pytest

from llmcycle.core.errors import DataError
from llmcycle.models.tokenizer import offline_tokenizer
from llmcycle.tuning.data import (
    IGNORE,
    PadCollator,
    build_dataset,
    to_pairs,
    tokenize_pairs,
)

ROWS = [{"input": "#Person1#: hi there.\n#Person2#: hello.", "references": ["they greet."]},
        {"input": "#Person1#: where is the station? it is far.\n#Person2#: left.", "references": ["directions."]}]


def test_templates_cycle_over_rows():
    pairs = to_pairs(ROWS, ["none", "instruction"])
    assert [p.template for p in pairs] == ["none", "instruction"]
    assert pairs[1].prompt.startswith("Summarize the following conversation.")
    assert pairs[0].completion == "they greet."


def test_rows_without_reference_are_an_error():
    with pytest.raises(DataError, match="row 0: no reference"):
        to_pairs([{"input": "x", "references": []}])


def test_seq2seq_labels_drop_cls_keep_eos():
    tok = offline_tokenizer("seq2seq")
    out = tokenize_pairs(to_pairs(ROWS), tok, "seq2seq", 64, 16)
    row = out.rows[0]
    assert row["input_ids"][0] == tok.cls_token_id and row["input_ids"][-1] == tok.sep_token_id
    assert row["labels"][0] != tok.cls_token_id and row["labels"][-1] == tok.sep_token_id
    assert tok.decode(row["labels"], skip_special_tokens=True) == "they greet."


def test_causal_labels_mask_the_prompt_and_end_in_eos():
    tok = offline_tokenizer("causal")
    out = tokenize_pairs(to_pairs(ROWS), tok, "causal", 64, 16)
    row = out.rows[0]
    n_prompt = len(tok(to_pairs(ROWS)[0].prompt)["input_ids"])
    assert row["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert row["labels"][n_prompt:] == row["input_ids"][n_prompt:]
    assert row["input_ids"][-1] == tok.sep_token_id
    assert tok.decode(row["labels"][n_prompt:], skip_special_tokens=True) == "they greet."


def test_padding_is_dynamic_and_labels_are_masked_on_padding():
    tok = offline_tokenizer("causal")
    ds, _ = build_dataset(ROWS, tok, "causal", ["none"], 200, 16)
    feats = [ds[0], ds[1]]
    batch = PadCollator(tok.pad_token_id)(feats)
    lengths = [len(f["input_ids"]) for f in feats]
    assert batch["input_ids"].shape == (2, max(lengths))  # the longest row, not max_input_tokens
    short = lengths.index(min(lengths))
    pad = max(lengths) - min(lengths)
    assert pad > 0
    assert batch["input_ids"][short, -pad:].tolist() == [tok.pad_token_id] * pad  # right padding
    assert batch["attention_mask"][short, -pad:].sum() == 0
    assert batch["labels"][short, -pad:].tolist() == [IGNORE] * pad
    assert ds[0]["length"] == lengths[0]


def test_truncation_is_reported():
    tok = offline_tokenizer("seq2seq")
    full = tokenize_pairs(to_pairs(ROWS), tok, "seq2seq", 512, 64)
    lens = [len(r["input_ids"]) for r in full.rows]
    limit = min(lens) + 1  # cuts only the longer row
    out = tokenize_pairs(to_pairs(ROWS), tok, "seq2seq", limit, 2)
    rep = out.report
    assert rep.rows == 2 and rep.inputs_truncated == 1
    assert rep.input_tokens_cut == rep.max_input_cut == max(lens) - limit
    assert all(len(r["input_ids"]) <= limit for r in out.rows)
    assert out.rows[1]["input_ids"][-1] == tok.sep_token_id  # the end marker survives the cut
    assert rep.targets_truncated == 2 and all(len(r["labels"]) == 2 for r in out.rows)
    assert "1/2 prompts truncated" in rep.summary()


def test_causal_completion_keeps_the_template_separator():
    pairs = to_pairs(ROWS, ["tldr", "none"])
    assert pairs[0].lead == " " and pairs[1].lead == "\n"


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_truncation_cuts_only_the_input_field_and_keeps_the_instruction_after_it(kind):
    tok = offline_tokenizer(kind)
    row = {"input": "#Person1#: " + " ".join(f"word{i}" for i in range(200)), "references": ["a summary."]}
    limit = 60
    out = tokenize_pairs(to_pairs([row], ["instruction"]), tok, kind, limit, 16)
    ids = out.rows[0]["input_ids"]
    prompt = [i for i, lab in zip(ids, out.rows[0]["labels"]) if lab == IGNORE] if kind == "causal" else ids
    text = tok.decode(prompt, skip_special_tokens=True)
    assert 0 < len(prompt) <= limit
    assert text.startswith("summarize the following conversation")  # the instruction before the input ...
    assert text.rstrip().endswith("summary :")  # ... and the one after it both survive
    assert "word0" in text.replace(" ", "") and "word199" not in text.replace(" ", "")  # the dialogue's tail went
    full = len(tok(to_pairs([row], ["instruction"])[0].prompt)["input_ids"])
    assert out.report.inputs_truncated == 1 and out.report.input_tokens_cut == full - len(prompt)
