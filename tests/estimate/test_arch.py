"""ArchSpec: the parameter-count formula equals the real model's count, family by family."""

from __future__ import annotations

import pytest

from llmcycle.core.errors import LLMCycleError
from llmcycle.estimate import ArchSpec

tf = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
tf.logging.set_verbosity_error()

FLAN_T5_BASE = dict(d_model=768, d_ff=2048, d_kv=64, num_heads=12, num_layers=12, num_decoder_layers=12,
                    vocab_size=32128, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                    relative_attention_num_buckets=32)
V = 101  # an odd vocabulary catches row/column mix-ups


def _bert(**kw):
    base = dict(vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                max_position_embeddings=40)
    return tf.BertConfig(**{**base, **kw})


CASES = {
    "t5-gated-untied": lambda: (tf.T5Config(d_model=64, d_ff=96, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=3,
                                            vocab_size=V, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
                                tf.T5ForConditionalGeneration),
    "t5-relu-tied": lambda: (tf.T5Config(d_model=64, d_ff=96, d_kv=16, num_heads=4, num_layers=2, vocab_size=V),
                             tf.T5ForConditionalGeneration),
    "mt5": lambda: (tf.MT5Config(d_model=64, d_ff=96, d_kv=8, num_heads=4, num_layers=2, vocab_size=V),
                    tf.MT5ForConditionalGeneration),
    "umt5": lambda: (tf.UMT5Config(d_model=64, d_ff=96, d_kv=8, num_heads=4, num_layers=2, vocab_size=V),
                     tf.UMT5ForConditionalGeneration),
    "bart": lambda: (tf.BartConfig(d_model=64, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
                                   decoder_attention_heads=2, encoder_ffn_dim=96, decoder_ffn_dim=80, vocab_size=V,
                                   max_position_embeddings=50), tf.BartForConditionalGeneration),
    "gpt2": lambda: (tf.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=V, n_positions=40), tf.GPT2LMHeadModel),
    "llama-gqa": lambda: (tf.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, vocab_size=V), tf.LlamaForCausalLM),
    "llama-tied-biases": lambda: (tf.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                                 num_attention_heads=4, num_key_value_heads=2, vocab_size=V,
                                                 tie_word_embeddings=True, attention_bias=True, mlp_bias=True),
                                  tf.LlamaForCausalLM),
    "mistral-head-dim": lambda: (tf.MistralConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                                  num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                                                  vocab_size=V), tf.MistralForCausalLM),
    "qwen2": lambda: (tf.Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, vocab_size=V), tf.Qwen2ForCausalLM),
    "bert-encoder": lambda: (_bert(), tf.BertModel),
    "bert-lm-head": lambda: (_bert(is_decoder=True, add_cross_attention=True), tf.BertLMHeadModel),
    "bert2bert": lambda: (tf.EncoderDecoderConfig.from_encoder_decoder_configs(
        _bert(), _bert(vocab_size=V + 3, num_hidden_layers=3, intermediate_size=80, is_decoder=True,
                       add_cross_attention=True, max_position_embeddings=30)), tf.EncoderDecoderModel),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_formula_equals_the_real_model(name):
    config, cls = CASES[name]()
    model = cls(config)
    spec = ArchSpec.from_config(config)
    if name == "t5-gated-untied":  # transformers 5.x ties T5's head when building from a config
        _untie_t5_head(model)
    assert spec.n_params == model.num_parameters()


def _untie_t5_head(model):
    """What from_pretrained does for a checkpoint with its own LM head (FLAN-T5)."""
    if model.lm_head.weight is model.shared.weight:
        model.lm_head.weight = torch.nn.Parameter(torch.empty_like(model.shared.weight))


def test_flan_t5_base_has_exactly_247_577_856_parameters():
    config = tf.T5Config(**FLAN_T5_BASE)
    spec = ArchSpec.from_config(config)
    assert spec.n_params == 247_577_856
    assert (spec.hidden_size, spec.n_heads, spec.head_dim, spec.ffn_size, spec.ffn_gated) == (768, 12, 64, 2048, True)
    assert (spec.encoder_layers, spec.decoder_layers, spec.vocab_size, spec.tied_embeddings) == (12, 12, 32128, False)
    with torch.device("meta"):  # the real module tree, without allocating or initialising 1 GB
        model = tf.T5ForConditionalGeneration(config)
    # transformers 5.x ties the head when building from a config (222,903,552 parameters) but keeps
    # FLAN-T5's separate head when loading the checkpoint; untie it the same way to compare.
    tied_count = model.num_parameters()
    _untie_t5_head(model)
    assert model.num_parameters() == spec.n_params == 247_577_856
    assert tied_count in (247_577_856, 247_577_856 - 32128 * 768)


def test_from_model_counts_trainable_parameters():
    config, cls = CASES["gpt2"]()
    model = cls(config)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("transformer.h.0."))
    spec = ArchSpec.from_model(model)
    assert spec.n_params == model.num_parameters()
    assert spec.n_trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < spec.n_trainable < spec.n_params


def test_dict_round_trip_and_rows():
    spec = ArchSpec.from_config(CASES["bert2bert"]()[0])
    again = ArchSpec.from_dict(spec.to_dict())
    assert again == spec
    assert dict(spec.rows())["kind"] == "seq2seq"


def test_unsupported_model_type_names_the_config():
    with pytest.raises(LLMCycleError, match=r"^config: model_type 'vit'"):
        ArchSpec.from_config(tf.ViTConfig())


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_from_model_of_a_lora_model():
    peft = pytest.importorskip("peft")
    config, cls = CASES["t5-relu-tied"]()
    model = peft.get_peft_model(cls(config), peft.LoraConfig(r=4, target_modules=["q", "v"]))
    spec = ArchSpec.from_model(model)
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert spec.n_trainable == lora > 0
    assert spec.n_params == ArchSpec.from_config(config).n_params + lora
