"""describe(): the model card, offline for bundled hub ids, exact parameter counts."""

from __future__ import annotations

import pytest

from llmcycle.models.architectures import bundled_config, bundled_ids, canonical_id
from llmcycle.models.info import describe


def test_minilm_card(minilm):
    card = describe(minilm)
    assert card.kind == "seq2seq" and card.family == "encoder-decoder"
    assert card.total_params == minilm.model.num_parameters() == card.trainable_params
    assert card.layers == "6 encoder + 6 decoder" and card.hidden_size == 384 and card.vocab_size == 30531
    assert card.context_length == 512
    weights_gb = card.memory["weights (fp32)"]
    assert weights_gb == pytest.approx(card.total_params * 4 / 1e9)


@pytest.mark.parametrize(
    "hub_id, params, kind, layers",
    [
        ("google/flan-t5-base", 247_577_856, "seq2seq", "12 encoder + 12 decoder"),
        ("gpt2", 124_439_808, "causal", "12"),
        ("meta-llama/Llama-3.2-1B-Instruct", 1_235_814_400, "causal", "16"),
        ("meta-llama/Llama-3.1-70B", 70_553_706_496, "causal", "80"),
        ("facebook/roberta-hate-speech-dynabench-r4-target", 124_647_170, "classifier", "12"),
    ],
)
def test_bundled_hub_ids_described_offline(hub_id, params, kind, layers):
    card = describe(hub_id)  # HF_HUB_OFFLINE=1 in the test command: built on the meta device
    assert card.total_params == params and card.kind == kind and card.layers == layers
    assert "bundled architecture" in card.weights


def test_grouped_query_heads_are_reported():
    card = describe("meta-llama/Llama-3.1-8B")
    assert card.heads == "32 query / 8 key-value (grouped-query)"


def test_bundled_ids_resolve_and_parse():
    assert len(bundled_ids()) >= 12
    assert canonical_id("GOOGLE/FLAN-T5-BASE") == "google/flan-t5-base"
    assert canonical_id("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B"
    assert canonical_id("someone/unknown") is None
    for hub_id in bundled_ids():
        assert bundled_config(hub_id) is not None
