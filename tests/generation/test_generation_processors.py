"""Processors on hand-made logits: OpenAI frequency/presence penalties, the seeded sampler, stop strings."""

from __future__ import annotations

import math

import pytest
import torch

from llmcycle.generation.processors import (
    FrequencyPresencePenalty,
    SeededSampler,
    StopOnStrings,
    filter_logits,
    find_stop,
    trim_at_stop,
)


def test_frequency_and_presence_penalty_follow_openai_formula():
    # one row: prompt [9, 9] (not counted), generated [5, 5, 7]; vocabulary of 10, flat logits
    input_ids = torch.tensor([[9, 9, 5, 5, 7]])
    scores = torch.zeros(1, 10)
    out = FrequencyPresencePenalty(frequency_penalty=0.5, presence_penalty=0.25, prompt_length=2)(input_ids, scores)
    expected = torch.zeros(1, 10)
    expected[0, 5] = -(2 * 0.5 + 0.25)  # count 2
    expected[0, 7] = -(1 * 0.5 + 0.25)  # count 1
    assert torch.equal(out, expected)  # token 9 (prompt only) and unseen tokens untouched


def test_penalties_shift_the_distribution_as_specified():
    input_ids = torch.tensor([[0, 3, 3, 3, 1]])  # decoder start 0 excluded (prompt_length=1)
    scores = torch.tensor([[1.0, 2.0, 0.5, 1.5]])
    f, p = 0.4, 0.6
    out = FrequencyPresencePenalty(f, p, prompt_length=1)(input_ids, scores)
    before, after = scores.softmax(-1)[0], out.softmax(-1)[0]
    # odds of a token against an unseen one (token 2) shrink by exp(count * f + p)
    assert math.isclose((after[3] / after[2]) / (before[3] / before[2]), math.exp(-(3 * f + p)), rel_tol=1e-5)
    assert math.isclose((after[1] / after[2]) / (before[1] / before[2]), math.exp(-(1 * f + p)), rel_tol=1e-5)
    assert math.isclose((after[0] / after[2]) / (before[0] / before[2]), 1.0, rel_tol=1e-5)  # start token not counted
    assert after[3] < before[3] and after[2] > before[2]


def test_negative_penalties_encourage_repeats_and_rows_are_independent():
    input_ids = torch.tensor([[4, 4, 2], [4, 1, 1]])  # prompt_length 1: row 0 generated [4, 2], row 1 [1, 1]
    scores = torch.zeros(2, 5)
    out = FrequencyPresencePenalty(-1.0, -0.5, prompt_length=1)(input_ids, scores)
    assert out[0].tolist() == [0.0, 0.0, 1.5, 0.0, 1.5]
    assert out[1].tolist() == [0.0, 2.5, 0.0, 0.0, 0.0]


def test_penalty_before_any_generated_token_is_a_no_op():
    scores = torch.randn(2, 6)
    out = FrequencyPresencePenalty(1.0, 1.0, prompt_length=3)(torch.tensor([[1, 2, 3], [0, 4, 5]]), scores)
    assert torch.equal(out, scores)


def test_filter_logits_matches_transformers_warpers():
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    torch.manual_seed(0)
    scores = torch.randn(4, 50)
    ids = torch.zeros(4, 1, dtype=torch.long)
    for t, k, p in [(0.7, 0, 0.9), (1.3, 10, 1.0), (1.0, 5, 0.5), (0.5, 0, 0.3)]:
        theirs = TemperatureLogitsWarper(t)(ids, scores.clone())
        if k:
            theirs = TopKLogitsWarper(k)(ids, theirs)
        if p < 1:
            theirs = TopPLogitsWarper(p)(ids, theirs)
        ours = filter_logits(scores, t, k, p)
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs)), (t, k, p)
        assert torch.allclose(ours[~torch.isinf(ours)], theirs[~torch.isinf(theirs)])


def _gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_seeded_sampler_picks_one_token_per_row_and_is_reproducible():
    scores = torch.randn(3, 20)
    a = SeededSampler(_gens(1, 2, 3))(None, scores)
    b = SeededSampler(_gens(1, 2, 3))(None, scores)
    assert torch.equal(a, b)
    assert ((a == 0).sum(dim=1) == 1).all() and torch.isinf(a).sum() == 3 * 19
    # a row's draw depends only on its own generator and logits, not on the other rows
    alone = SeededSampler(_gens(2))(None, scores[1:2])
    assert torch.equal(alone[0], a[1])


def test_seeded_sampler_samples_the_softmax_distribution():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    sampler = SeededSampler(_gens(123))
    n = 4000
    counts = torch.zeros(4)
    for _ in range(n):
        counts[sampler(None, logits).argmax()] += 1
    expected = logits.softmax(-1)[0] * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.3  # 3 degrees of freedom, p = 0.001


def test_seeded_sampler_top_k_and_top_p_limit_the_choice():
    logits = torch.tensor([[3.0, 2.9, 0.0, -1.0, -2.0]])
    seen_k = {int(SeededSampler(_gens(s), top_k=2)(None, logits).argmax()) for s in range(60)}
    assert seen_k == {0, 1}
    seen_p = {int(SeededSampler(_gens(s), top_p=0.3)(None, logits).argmax()) for s in range(60)}
    assert seen_p == {0}
    cold = {int(SeededSampler(_gens(s), temperature=0.01)(None, logits).argmax()) for s in range(60)}
    assert cold == {0}


def test_find_and_trim_at_the_first_stop_string():
    assert find_stop("a b ### c END", ["END", "###"]) == 4
    assert trim_at_stop("a b ### c END", ["END", "###"]) == ("a b ", True)
    assert trim_at_stop("nothing here", ["###"]) == ("nothing here", False)
    assert trim_at_stop("text", []) == ("text", False)


def test_stop_criterion_decodes_only_generated_tokens():
    words = {1: "hello", 2: "world", 3: "stop", 4: "now"}

    def decode(ids):
        return " ".join(words.get(i, "") for i in ids).strip()

    crit = StopOnStrings(["stop now"], decode, prompt_length=2)
    input_ids = torch.tensor([[3, 4, 1, 2],   # prompt says "stop now": must not count
                              [1, 1, 3, 4],   # generated "stop now"
                              [1, 1, 3, 1]])  # "stop hello": not yet
    assert crit(input_ids, None).tolist() == [False, True, False]


@pytest.mark.parametrize("bad", [-1])
def test_penalty_rejects_negative_prompt_length(bad):
    with pytest.raises(ValueError):
        FrequencyPresencePenalty(0.1, 0.1, prompt_length=bad)
