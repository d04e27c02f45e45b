"""Packing, masking and span corruption: exact properties, no model needed."""

from __future__ import annotations

import pytest
import torch

from llmcycle.core.errors import ConfigError, DataError
from llmcycle.models.tokenizer import offline_tokenizer
from llmcycle.pretrain.data import (
    Collator,
    add_sentinels,
    corrupt_spans,
    mask_tokens,
    noise_mask,
    pack,
    python_docs_texts,
    read_text_file,
    sentinel_ids,
)

DOCS = ["#Person1#: Hello, how are you today?", "#Person2#: Fine thanks. And you?", "a b c d e f g h i j k l"]


@pytest.fixture(scope="module")
def tok():
    return offline_tokenizer("causal")


def test_packing_separates_documents_and_cuts_exact_blocks(tok):
    stream = []
    for d in DOCS:
        stream += tok(d, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    packed = pack(DOCS, tok, 7, "clm")
    n = len(stream) // 7
    assert packed.blocks.shape == (n, 7)
    assert packed.blocks.flatten().tolist() == stream[: n * 7]  # the stream, in order, eos after each document
    assert packed.tokens == len(stream) and packed.dropped == len(stream) - n * 7 and packed.documents == 3
    assert (packed.blocks == tok.eos_token_id).sum() == stream[: n * 7].count(tok.eos_token_id)


def test_mlm_blocks_are_wrapped_in_cls_and_sep():
    tok = offline_tokenizer("seq2seq")
    packed = pack(DOCS * 3, tok, 10, "mlm")
    assert packed.blocks.shape[1] == 10
    assert (packed.blocks[:, 0] == tok.cls_token_id).all() and (packed.blocks[:, -1] == tok.sep_token_id).all()


def test_masking_picks_only_ordinary_tokens_and_is_reproducible():
    tok = offline_tokenizer("seq2seq")
    ids = pack(DOCS * 40, tok, 64, "mlm").blocks
    inputs, labels = mask_tokens(ids, tok, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != -100
    specials = torch.isin(ids, torch.tensor(tok.all_special_ids))
    assert not (chosen & specials).any()
    assert torch.equal(labels[chosen], ids[chosen])  # labels are the original tokens where predicted
    share = chosen.sum().item() / (~specials).sum().item()
    assert 0.10 < share < 0.20
    masked = (inputs == tok.mask_token_id) & chosen
    assert 0.7 < masked.sum().item() / chosen.sum().item() < 0.9  # ~80% [MASK]
    assert torch.equal(inputs[~chosen], ids[~chosen])  # nothing else changes
    again = mask_tokens(ids, tok, 0.15, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


@pytest.mark.parametrize("length,density,span", [(64, 0.15, 3.0), (128, 0.3, 2.0), (20, 0.15, 3.0)])
def test_noise_mask_has_the_requested_noise_in_spans(length, density, span):
    for seed in range(20):
        mask = noise_mask(length, density, span, torch.Generator().manual_seed(seed))
        assert mask.sum().item() == max(1, round(length * density))
        assert not mask[0]  # T5 starts with a non-noise span
        spans = sum(1 for i in range(length) if mask[i] and (i == 0 or not mask[i - 1]))
        assert spans == min(max(1, round(max(1, round(length * density)) / span)), mask.sum().item())


def test_span_corruption_inputs_and_targets_rebuild_the_block():
    tok = offline_tokenizer("seq2seq")
    add_sentinels(tok, 20)
    sentinels = sentinel_ids(tok)
    assert len(sentinels) == 20 and len(set(sentinels)) == 20
    block = torch.arange(1000, 1064)
    x, y = corrupt_spans(block, sentinels, 102, 0.15, 3.0, torch.Generator().manual_seed(1))
    assert x[-1] == 102 and y[-1] == 102
    # put each span back where its sentinel stands
    spans: dict[int, list[int]] = {}
    current = None
    for t in y[:-1]:
        if t in sentinels:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    rebuilt = [t for s in x[:-1] for t in (spans[s] if s in sentinels else [s])]
    assert rebuilt == block.tolist()
    assert sum(len(v) for v in spans.values()) == round(64 * 0.15)


def test_collators_shape_batches_for_each_objective():
    tok = offline_tokenizer("seq2seq")
    add_sentinels(tok, 20)
    rows = [{"input_ids": b} for b in pack(DOCS * 20, tok, 32, "span").blocks[:4]]
    batch = Collator("span", tok)(rows)
    assert batch["input_ids"].shape[0] == 4 and batch["labels"].shape[0] == 4
    assert (batch["attention_mask"].sum(1) == (batch["input_ids"] != tok.pad_token_id).sum(1)).all()
    clm = Collator("clm", offline_tokenizer("causal"))(rows)
    assert torch.equal(clm["labels"], clm["input_ids"])
    with pytest.raises(ConfigError, match="sentinel"):
        Collator("span", offline_tokenizer("seq2seq"))


def test_corpus_files_and_the_general_text(tmp_path):
    (tmp_path / "a.txt").write_text("first doc\nline two\n\nsecond doc\n\n\n", encoding="utf-8")
    assert read_text_file(tmp_path / "a.txt") == ["first doc\nline two", "second doc"]
    (tmp_path / "b.jsonl").write_text('{"text": "x"}\n{"nope": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"b.jsonl:2: each line needs a string field 'text'"):
        read_text_file(tmp_path / "b.jsonl")
    with pytest.raises(DataError, match="no such file"):
        read_text_file(tmp_path / "missing.txt")
    docs = python_docs_texts()
    assert len(docs) > 50 and sum(len(d.split()) for d in docs) > 50_000  # real prose, shipped with Python
