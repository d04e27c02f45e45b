"""BLEU/chrF (sacrebleu, reference streams), distinct-n, self-BLEU, length statistics, accuracy, macro-F1."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation import (
    accuracy,
    bleu,
    chrf,
    distinct,
    distinct_n,
    length_stats,
    macro_f1,
    reference_streams,
    self_bleu,
)

PREDS = ["the cat sat on the mat today", "a quick brown fox jumped", "hello there my friend"]
REFS = [["the cat sat on a mat today", "a cat was on the mat"], ["the quick brown fox jumps"], ["hello my friend"]]


def test_reference_streams_transpose_and_pad_with_none() -> None:
    assert reference_streams([["a1", "a2"], ["b1"], "c1"]) == [["a1", "b1", "c1"], ["a2", None, None]]
    assert reference_streams(["x", "y"]) == [["x", "y"]]


def test_bleu_equals_sacrebleu_with_variable_references() -> None:
    got = bleu(PREDS, REFS)
    want = sacrebleu.corpus_bleu(PREDS, [[r[0] for r in REFS], [REFS[0][1], None, None]])
    assert got["bleu"] == pytest.approx(want.score)
    assert got["bp"] == pytest.approx(want.bp) and got["precisions"] == pytest.approx(want.precisions)
    assert "nrefs:var" in got["signature"]
    assert bleu(["same sentence here again"], ["same sentence here again"])["bleu"] == pytest.approx(100.0)


def test_second_reference_can_only_raise_bleu() -> None:
    one = bleu(PREDS, [r[0] for r in REFS])["bleu"]
    assert bleu(PREDS, REFS)["bleu"] >= one


def test_chrf_equals_sacrebleu_and_chrf_plus_plus() -> None:
    streams = [[r[0] for r in REFS], [REFS[0][1], None, None]]
    assert chrf(PREDS, REFS)["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDS, streams).score)
    plus = sacrebleu.corpus_chrf(PREDS, streams, word_order=2).score
    assert chrf(PREDS, REFS, word_order=2)["chrf"] == pytest.approx(plus)


def test_distinct_n_counts_unique_ngrams() -> None:
    assert distinct_n(["a b a b"], 1) == 0.5
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct(["a b", "A B"]) == {"distinct-1": 0.5, "distinct-2": 0.5}
    assert distinct_n(["a"], 2) == 0.0  # no bigram at all


def test_self_bleu_high_for_copies_low_for_diverse_samples() -> None:
    copies = ["the model says the same thing"] * 4
    diverse = ["apples grow on tall trees", "my train leaves at noon", "quantum bits are fragile", "we sang all night"]
    assert self_bleu(copies) == pytest.approx(100.0)
    assert self_bleu(diverse) < 10.0
    expected = np.mean([sacrebleu.sentence_bleu(t, diverse[:i] + diverse[i + 1:]).score for i, t in enumerate(diverse)])
    assert self_bleu(diverse) == pytest.approx(expected)


def test_length_stats_words_and_tokens() -> None:
    texts = ["one", "one two", "one two three", "one two three four", "a b c d e f g h i j"]
    s = length_stats(texts)
    lengths = [1, 2, 3, 4, 10]
    assert s["mean"] == pytest.approx(np.mean(lengths)) and s["median"] == 3
    assert s["p95"] == pytest.approx(np.percentile(lengths, 95))
    assert (s["min"], s["max"], s["count"]) == (1, 10, 5)
    chars = length_stats(["abc", "de"], unit="tokens", tokenizer=list)
    assert (chars["min"], chars["max"]) == (2, 3)


def test_length_stats_with_hf_tokenizer_excludes_special_tokens() -> None:
    from llmcycle.models.tokenizer import offline_tokenizer

    tok = offline_tokenizer()
    s = length_stats(["#Person1# says hello"], unit="tokens", tokenizer=tok)
    assert s["max"] == len(tok.tokenize("#Person1# says hello"))


def test_accuracy_and_macro_f1_match_sklearn() -> None:
    from sklearn.metrics import f1_score

    gold = ["pos", "neg", "neu", "pos", "neg", "pos", "neu"]
    pred = ["pos", "neg", "pos", "pos", "neu", "neg", "spam"]
    assert accuracy(pred, gold) == pytest.approx(3 / 7)
    assert macro_f1(pred, gold) == pytest.approx(f1_score(gold, pred, average="macro", zero_division=0))
    assert macro_f1([1, 0, 1], [1, 0, 1]) == 1.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: bleu(["a", "b"], ["a"]), "references: 1 items but predictions has 2"),
        (lambda: bleu(["a"], [[None]]), r"references\[0\]\[0\]: expected a string"),
        (lambda: bleu(["a"], ["a"], tokenize="moses"), "tokenize: unknown value 'moses'"),
        (lambda: chrf([1], ["a"]), r"predictions\[0\]: expected a string, got int"),
        (lambda: self_bleu(["only one"]), "texts: self-BLEU needs at least 2 texts"),
        (lambda: distinct_n(["a"], 0), "n: expected an integer >= 1"),
        (lambda: length_stats(["a"], unit="tokens"), "tokenizer: unit='tokens' needs a tokenizer"),
        (lambda: length_stats(["a"], unit="chars"), "unit: unknown value 'chars'"),
        (lambda: accuracy([1, 2], [1]), "predictions has 2 items but labels has 1"),
        (lambda: macro_f1([], []), "predictions: is empty"),
        (lambda: macro_f1([[1]], [1]), r"predictions\[0\]: expected a label"),
    ],
)
def test_bad_input_names_the_argument(call, match: str) -> None:
    with pytest.raises(LLMCycleError, match=match):
        call()
