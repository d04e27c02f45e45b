"""estimate_memory: the course figures, the ZeRO table, trainable fractions, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmcycle.core.errors import LLMCycleError
from llmcycle.estimate import GB, ArchSpec, estimate_memory
from llmcycle.estimate.arch import StackSpec

B1 = 1_000_000_000


def _rows(est) -> dict[str, float]:
    return {name: b / GB for name, b, _, _ in est.rows()}


@pytest.mark.parametrize("dtype, gb", [("fp32", 4.0), ("fp16", 2.0), ("bf16", 2.0), ("int8", 1.0), ("int4", 0.5)])
def test_weights_of_one_billion_parameters(dtype, gb):
    est = estimate_memory(B1, dtype=dtype, mode="inference")
    assert est.weights / GB == gb
    assert est.total / GB == gb
    assert est.rows()[0][2] == f"{gb:.2f} GB"


def test_full_fine_tuning_fp32_adam_is_24_bytes_per_param():
    est = estimate_memory(B1, dtype="fp32", mode="training", optimizer="adam")
    assert _rows(est) == {"weights": 4.0, "gradients": 4.0, "optimizer states": 8.0, "activations": 8.0, "total": 24.0}
    assert est.total == 6 * est.weights
    assert est.activation_method == "rule_of_thumb"
    assert any("rule of thumb" in note for note in est.notes)
    assert "rule of thumb" in dict((r[0], r[3]) for r in est.rows())["activations"]


# ZeRO paper (Rajbhandari et al. 2020), Figure 1: 7.5B params, 64 GPUs, mixed-precision Adam (K = 12)
@pytest.mark.parametrize("parallelism, gb", [("ddp", 120.0), ("zero1", 31.4), ("zero2", 16.6), ("zero3", 1.9),
                                             ("fsdp", 1.9)])
def test_zero_stages_per_gpu(parallelism, gb):
    est = estimate_memory(7.5e9, dtype="fp16", mixed_precision=True, optimizer="adam", parallelism=parallelism,
                          n_gpus=64)
    assert round(est.model_states / GB, 1) == gb
    assert any(f"{est.model_states / GB:.2f} GB" in note for note in est.notes)


def test_zero_stages_fall_stage_by_stage():
    totals = [estimate_memory(7.5e9, dtype="bf16", mixed_precision=True, parallelism=p, n_gpus=64).total
              for p in ("ddp", "zero1", "zero2", "zero3")]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 4


def test_mixed_precision_is_16_bytes_per_param_of_model_states():
    est = estimate_memory(B1, dtype="bf16", mixed_precision=True)
    assert (est.weights, est.master_weights, est.gradients, est.optimizer_states) == (2 * B1, 4 * B1, 2 * B1, 8 * B1)


@pytest.mark.parametrize("kwargs", [{"trainable_fraction": 0.01}, {"trainable_params": 10_000_000}])
def test_lora_fraction_lowers_gradients_and_optimizer_only(kwargs):
    full = estimate_memory(B1)
    lora = estimate_memory(B1, **kwargs)
    assert lora.weights == full.weights and lora.activations == full.activations
    assert lora.gradients == full.gradients // 100
    assert lora.optimizer_states == full.optimizer_states // 100


def _tiny_seq2seq() -> ArchSpec:
    stack = StackSpec(layers=2, hidden_size=64, n_heads=4, n_kv_heads=4, head_dim=16, ffn_size=256, ffn_gated=False,
                      activation="gelu", attention_dropout=0.1, hidden_dropout=0.1)
    return ArchSpec(kind="seq2seq", model_type="bart", n_params=2_000_000, vocab_size=1000, tied_embeddings=True,
                    max_positions=512, encoder=stack, decoder=StackSpec(**{**stack.__dict__, "cross_attention": True}),
                    lm_head_params=64_000, largest_param=64_000)


def test_lora_with_a_batch_keeps_weights_and_activations():
    arch = _tiny_seq2seq()
    shape = dict(batch_size=4, input_len=128, output_len=32)
    full = estimate_memory(arch, **shape)
    lora = estimate_memory(arch, trainable_fraction=0.02, **shape)
    assert lora.weights == full.weights and lora.activations == full.activations
    assert lora.gradients < full.gradients / 40 and lora.optimizer_states < full.optimizer_states / 40
    assert lora.total < full.total


def test_rows_add_up_and_checkpointing_saves_memory():
    arch = _tiny_seq2seq()
    for ckpt in (False, True):
        est = estimate_memory(arch, batch_size=8, input_len=256, output_len=64, grad_checkpointing=ckpt)
        rows = est.rows()
        assert sum(b for name, b, _, _ in rows[:-1]) == rows[-1][1] == est.total
        assert est.not_together <= 0 and est.activation_method == "architecture"
    plain = estimate_memory(arch, batch_size=8, input_len=256, output_len=64)
    ckpt = estimate_memory(arch, batch_size=8, input_len=256, output_len=64, grad_checkpointing=True)
    assert ckpt.activations < plain.activations and ckpt.total < plain.total


def test_activations_grow_with_the_batch_and_to_dict_is_plain():
    arch = _tiny_seq2seq()
    small = estimate_memory(arch, batch_size=2, input_len=128, output_len=32)
    big = estimate_memory(arch, batch_size=8, input_len=128, output_len=32)
    assert big.activations == pytest.approx(4 * small.activations, rel=0.02)
    data = big.to_dict()
    assert data["total"] == big.total and data["activation_method"] == "architecture"


def test_inference_with_a_batch_adds_the_kv_cache():
    arch = _tiny_seq2seq()
    bare = estimate_memory(arch, mode="inference")
    batch = estimate_memory(arch, mode="inference", batch_size=4, input_len=128, output_len=32)
    assert bare.total == bare.weights and batch.activations > 0 and batch.gradients == 0


@pytest.mark.parametrize("kwargs, argument", [
    ({"model": -5}, "n_params"),
    ({"model": 0}, "n_params"),
    ({"model": B1, "dtype": "fp8"}, "dtype"),
    ({"model": B1, "mode": "serve"}, "mode"),
    ({"model": B1, "optimizer": "lion"}, "optimizer"),
    ({"model": B1, "parallelism": "zero4", "n_gpus": 8}, "parallelism"),
    ({"model": B1, "parallelism": "ddp", "n_gpus": 0}, "n_gpus"),
    ({"model": B1, "n_gpus": 4}, "parallelism"),
    ({"model": B1, "trainable_fraction": 1.5}, "trainable_fraction"),
    ({"model": B1, "trainable_fraction": 0.1, "trainable_params": 5}, "trainable_fraction"),
    ({"model": B1, "trainable_params": 2 * B1}, "trainable_params"),
    ({"model": B1, "mixed_precision": True}, "mixed_precision"),
    ({"model": B1, "dtype": "int4"}, "dtype"),
    ({"model": B1, "batch_size": 8, "input_len": 128}, "batch_size"),
    ({"model": B1, "batch_size": -1, "input_len": 128}, "batch_size"),
    ({"model": B1, "attention": "paged"}, "attention"),
])
def test_bad_input_names_the_argument(kwargs, argument):
    kwargs = dict(kwargs)
    with pytest.raises(LLMCycleError, match=rf"^{argument}:"):
        estimate_memory(kwargs.pop("model"), **kwargs)


def test_seq2seq_batch_needs_an_output_length():
    with pytest.raises(LLMCycleError, match=r"^output_len:"):
        estimate_memory(_tiny_seq2seq(), batch_size=2, input_len=64)


def test_importing_the_package_stays_cheap():
    code = "import sys, llmcycle.estimate; assert not {'torch', 'transformers'} & set(sys.modules), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)
