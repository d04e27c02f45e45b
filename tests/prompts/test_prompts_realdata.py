"""The budget on real DialogSum (marked realdata; skipped without ../shared/data/dialogsum)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmcycle.prompts import RandomShots, build_prompts

DIALOGSUM = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "dialogsum").resolve()

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (DIALOGSUM / "dialogsum.test.jsonl").is_file(),
                       reason=f"real DialogSum data not found at {DIALOGSUM}"),
]


def test_two_shot_dialogsum_prompts_fit_512_tokens_and_report_every_cut(tok) -> None:
    from llmcycle.data import load_data

    test = load_data(DIALOGSUM, split="test")["test"]
    pool = load_data(DIALOGSUM, split="train", n=300, seed=1)["train"]
    batch = build_prompts("instruction", test, tokenizer=tok, shots=RandomShots(pool, 2, seed=0))
    assert len(batch) == 500
    for p in batch.prompts:
        assert p.n_tokens <= p.max_tokens == 512
        assert len(p.shot_ids) + len(p.shots_dropped) == 2
        if p.input_truncated:  # only after both shots were dropped
            assert p.shot_ids == [] and p.tokens_removed > 0 and p.n_tokens_full > 512
    summary = batch.summary
    assert summary.n_with_dropped_shots > 100  # two DialogSum shots often overflow a 512-token model
    assert 0 < summary.n_truncated < 20  # a few test dialogues alone exceed 512 tokens
    longest = max(batch.prompts, key=lambda p: p.n_tokens_full)
    assert longest.n_tokens_full > 512 and longest.input_truncated and longest.shot_ids == []
