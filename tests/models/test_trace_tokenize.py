"""trace walks a text through seq2seq and causal models; tokenize flags lossy round trips."""

from __future__ import annotations

import pytest

from llmcycle.models.tokenize import tokenize_text
from llmcycle.models.trace import trace

TEXT = "#Person1#: Could you book me a table for two?"


def titles(steps):
    return [s.title for s in steps]


def test_trace_seq2seq_walks_every_component(minilm):
    steps = trace(minilm, TEXT)
    assert titles(steps) == ["tokens", "embedding", "positions", "encoder self-attention, layer 1",
                             "decoder self-attention, layer 1", "cross-attention, layer 1", "logits"]
    by = {s.title: " ".join(s.lines) for s in steps}
    n_tokens = len(minilm.tokenizer(TEXT)["input_ids"])
    assert f"{n_tokens} tokens" in by["tokens"] and "#Person1#(30522)" in by["tokens"]
    assert f"(1, {n_tokens}, 384)" in by["embedding"]
    assert f"heads=12, queries={n_tokens}, keys={n_tokens}" in by["encoder self-attention, layer 1"]
    assert f"queries=1, keys={n_tokens}" in by["cross-attention, layer 1"]
    assert "rows sums to" not in by["logits"] and "top 5 next tokens" in by["logits"]
    assert "learned absolute position" in by["positions"]


def test_trace_restores_attention_implementation(minilm):
    before = minilm.model.config._attn_implementation
    trace(minilm, "hello")
    assert minilm.model.config._attn_implementation == before


@pytest.mark.parametrize("name, position", [("tiny-llama", "RoPE"), ("tiny-gpt2", "wpe"), ("tiny-t5", "relative")])
def test_trace_other_families(load_builtin, name, position):
    loaded = load_builtin(name)
    steps = trace(loaded, "hello there")
    by = {s.title: " ".join(s.lines) for s in steps}
    assert position in by["positions"]
    assert "untrained" in by["note"]
    if loaded.kind == "causal":
        assert "self-attention, layer 1" in by and "vocab" in by["logits"]


def test_attention_rows_are_probabilities(load_builtin):
    steps = trace(load_builtin("tiny-llama"), "one two three")
    line = next(s for s in steps if s.title == "self-attention, layer 1").lines[0]
    assert "each row sums to 1.000" in line


def test_tokenize_round_trip_flags(minilm):
    tok = minilm.tokenizer
    clean = tokenize_text(tok, "hello world")
    assert clean.lossless and clean.tokens == ["hello", "world"] and clean.decoded == "hello world"
    cased = tokenize_text(tok, "Hello World")
    assert not cased.lossless and any("case folded" in x for x in cased.losses)
    unk = tokenize_text(tok, "smile 🙂")
    assert unk.unknown == [1] and any("unknown" in x for x in unk.losses)
    special = tokenize_text(tok, "hi", add_special_tokens=True)
    assert special.tokens == ["[CLS]", "hi", "[SEP]"]
