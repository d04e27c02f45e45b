"""The activation count against the bytes autograd really saves, on tiny models of each family.

Measured with ``torch.autograd.graph.saved_tensors_hooks``: the sum of the unique storages of the
tensors saved for backward during one training forward pass, parameters excluded.
"""

from __future__ import annotations

import pytest

from llmcycle.estimate import ArchSpec
from llmcycle.estimate.activations import (
    Precision,
    Shape,
    attention_path,
    estimate_activations,
    estimate_inference_activations,
)

tf = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
tf.logging.set_verbosity_error()

V, B, T_IN, T_OUT = 300, 3, 40, 12
FP32_CPU = Precision.for_device(4, "cpu")


def _bert(**kw):
    return tf.BertConfig(vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=128, **kw)


def _bert2bert():
    config = tf.EncoderDecoderConfig.from_encoder_decoder_configs(
        _bert(), _bert(is_decoder=True, add_cross_attention=True))
    config.decoder_start_token_id, config.pad_token_id = 0, 0
    return config, tf.EncoderDecoderModel


FAMILIES = {
    "t5-gated-gelu": lambda: (tf.T5Config(d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2, vocab_size=V,
                                          feed_forward_proj="gated-gelu", decoder_start_token_id=0),
                              tf.T5ForConditionalGeneration),
    "t5-relu": lambda: (tf.T5Config(d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2, vocab_size=V,
                                    decoder_start_token_id=0), tf.T5ForConditionalGeneration),
    "gpt2": lambda: (tf.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=V, bos_token_id=0, eos_token_id=0),
                     tf.GPT2LMHeadModel),
    "llama-gqa": lambda: (tf.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, vocab_size=V),
                          tf.LlamaForCausalLM),
    "bart": lambda: (tf.BartConfig(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                   decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, vocab_size=V),
                     tf.BartForConditionalGeneration),
    "bert2bert": _bert2bert,
}


def saved_bytes(model, batch: dict) -> int:
    """Bytes of the unique storages autograd saves in one forward pass, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch)
    return sum(storages.values())


def _batch(spec: ArchSpec) -> dict:
    gen = torch.Generator().manual_seed(0)
    if spec.kind == "causal":
        ids = torch.randint(1, V, (B, T_IN + T_OUT), generator=gen)
        return {"input_ids": ids, "labels": ids}
    ids = torch.randint(1, V, (B, T_IN), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(1, V, (B, T_OUT), generator=gen)}


def _build(name: str, attn: str, dtype=None):
    torch.manual_seed(0)
    config, cls = FAMILIES[name]()
    model = cls(config).to(dtype or torch.float32)
    model.set_attn_implementation(attn)
    return ArchSpec.from_config(config), model.train()


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_saved_tensors_match_the_count(name, attn, dtype):
    """bf16 checks the fp32 islands: RMSNorm's fp32 copy, SDPA's math path upcast on CPU, Llama's
    fp32 softmax, the causal loss on float logits."""
    spec, model = _build(name, attn, torch.bfloat16 if dtype == "bf16" else torch.float32)
    measured = saved_bytes(model, _batch(spec))
    precision = Precision.for_device(2 if dtype == "bf16" else 4, "cpu")
    est = estimate_activations(spec, Shape(B, T_IN, T_OUT), precision, attention=attn, device="cpu")
    assert est.saved == pytest.approx(measured, rel=0.05), est.attention_paths


def test_transformers_defaults_to_sdpa_on_cpu_for_t5_and_bert():
    """The estimate's 'auto' assumes what transformers picks; this pins it."""
    for name in ("t5-gated-gelu", "bert2bert"):
        config, cls = FAMILIES[name]()
        model = cls(config)
        assert model.config._attn_implementation == "sdpa"


def test_sdpa_paths_on_cpu_follow_dropout_and_learned_bias():
    t5 = ArchSpec.from_config(FAMILIES["t5-gated-gelu"]()[0])
    llama = ArchSpec.from_config(FAMILIES["llama-gqa"]()[0])
    bart = ArchSpec.from_config(FAMILIES["bart"]()[0])
    assert attention_path(t5.encoder, "sdpa", "cpu", training=True) == "math"  # dropout and learned bias
    assert attention_path(llama.decoder, "sdpa", "cpu", training=True) == "flash"  # no dropout
    assert attention_path(bart.encoder, "sdpa", "cpu", training=True) == "flash"  # attention_dropout 0
    assert attention_path(t5.encoder, "eager", "cpu", training=True) == "eager"
    assert attention_path(t5.encoder, "sdpa", "cpu", training=False) == "flash"


def test_checkpointing_keeps_layer_inputs_and_one_layer():
    spec = ArchSpec.from_config(FAMILIES["gpt2"]()[0])
    shape = Shape(B, T_IN, T_OUT)
    full = estimate_activations(spec, shape, FP32_CPU)
    ckpt = estimate_activations(spec, shape, FP32_CPU, grad_checkpointing=True)
    layer_inputs = spec.decoder_layers * full.layer_input["decoder"]
    assert ckpt.saved == full.saved - spec.decoder_layers * full.per_layer["decoder"] + layer_inputs + full.per_layer["decoder"]
    assert ckpt.saved < full.saved


def test_inference_kv_cache_of_a_gqa_model():
    spec = ArchSpec.from_config(FAMILIES["llama-gqa"]()[0])
    inf = estimate_inference_activations(spec, Shape(2, 100, 28), Precision(act=2, mask=1))
    s = spec.decoder
    assert inf.kv_cache == 2 * s.layers * 2 * 128 * s.n_kv_heads * s.head_dim * 2


# --- the whole training step: peak live memory against the estimate's timeline ------------------

PEAK_FAMILIES = {
    "gpt2": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=128, n_layer=2, n_head=4, vocab_size=2000,
                                                     bos_token_id=0, eos_token_id=0)),
    "llama-gqa": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                                                            num_attention_heads=4, num_key_value_heads=2,
                                                            vocab_size=2000)),
    "t5-gated-gelu": lambda: tf.T5ForConditionalGeneration(tf.T5Config(
        d_model=128, d_ff=256, d_kv=32, num_heads=4, num_layers=2, vocab_size=2000, feed_forward_proj="gated-gelu",
        decoder_start_token_id=0)),
    "bart": lambda: tf.BartForConditionalGeneration(tf.BartConfig(
        d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=512, decoder_ffn_dim=512, vocab_size=2000)),
}


def _peak_of_a_step(model, batch: dict, in_use) -> int:
    """Peak bytes in use above the start of a training step (after a warm-up step)."""
    from llmcycle.estimate.measure import peak_in_use

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for step in range(2):
        start, tracker = in_use(), peak_in_use(in_use)
        with tracker:
            model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return tracker.peak - start


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("ckpt", [False, True])
@pytest.mark.parametrize("name", sorted(PEAK_FAMILIES))
def test_training_step_peak_matches_live_memory(name, ckpt):
    """What a step adds above weights and optimizer states: activations, gradients, transients, in order."""
    from llmcycle.estimate import estimate_memory
    from llmcycle.estimate.measure import malloc_in_use_fn

    in_use = malloc_in_use_fn()
    if in_use is None:
        pytest.skip("needs glibc's mallinfo2")
    torch.manual_seed(0)
    model = PEAK_FAMILIES[name]().train()
    if ckpt:
        model.activation_checkpointing_enable()
    spec = ArchSpec.from_model(model)
    gen = torch.Generator().manual_seed(0)
    b, t_in, t_out = 4, 160, 40
    if spec.kind == "causal":
        ids = torch.randint(1, 2000, (b, t_in + t_out), generator=gen)
        batch = {"input_ids": ids, "labels": ids}
    else:
        ids = torch.randint(1, 2000, (b, t_in), generator=gen)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                 "labels": torch.randint(1, 2000, (b, t_out), generator=gen)}
    measured = _peak_of_a_step(model, batch, in_use)
    est = estimate_memory(spec, batch_size=b, input_len=t_in, output_len=t_out, grad_checkpointing=ckpt,
                          optimizer="adamw", device="cpu")
    above_resident = est.total - est.weights - est.master_weights - est.optimizer_states
    assert above_resident == pytest.approx(measured, rel=0.10)
