"""The model a pre-training run trains: a real family built from scratch at a chosen size, or the model it
received (continued pre-training), and the module the objective trains inside it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmcycle.core.errors import ConfigError, ModelSourceError
from llmcycle.models.builtins import quiet_transformers, seeded
from llmcycle.models.loader import LoadedModel
from llmcycle.pretrain.config import DEFAULT_OBJECTIVE, ArchitectureOptions, PretrainConfig
from llmcycle.pretrain.data import add_sentinels

log = logging.getLogger("llmcycle")

KIND_OF_OBJECTIVE = {"clm": "causal", "mlm": "encoder", "span": "seq2seq"}


@dataclass
class Target:
    """What trains (``trained``: the module the Trainer sees) and what is saved and handed on (``saved``)."""

    trained: Any
    saved: Any
    tokenizer: Any
    objective: str
    family: str
    kind: str  # causal | seq2seq | encoder (a masked LM: saved, not generative)
    fresh_head: list[Any] = field(default_factory=list)  # parameters of a head made here (init: received, mlm)
    notes: list[str] = field(default_factory=list)

    @property
    def params(self) -> int:
        """N: the trained module's parameters, shared (tied) ones counted once."""
        return sum(p.numel() for p in self.trained.parameters())

    @property
    def embedding_params(self) -> int:
        emb = self.trained.get_input_embeddings()
        return emb.weight.numel() if emb is not None else 0


def scratch_tokenizer(cfg: PretrainConfig, objective: str) -> Any:
    """The tokenizer of a from-scratch model: ``cfg.tokenizer`` (a folder or a model source) or the builtin one,
    with a pad token and (span) T5's sentinels."""
    from transformers import AutoTokenizer

    from llmcycle.models.tokenizer import offline_tokenizer

    if cfg.tokenizer is None:
        tok = offline_tokenizer("causal" if objective == "clm" else "seq2seq")
    elif cfg.tokenizer.startswith("builtin:"):
        from llmcycle.models.builtins import get_builtin

        tok = offline_tokenizer(get_builtin(cfg.tokenizer).tok_kind if objective == "clm" else "seq2seq")
    else:
        path = Path(cfg.tokenizer).expanduser()
        if cfg.tokenizer.startswith((".", "/", "~")) and not path.is_dir():
            raise ConfigError(f"tokenizer: no such folder {cfg.tokenizer}")
        try:
            tok = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else cfg.tokenizer)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"tokenizer: cannot load {cfg.tokenizer}: {str(exc).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise ConfigError(f"tokenizer: {cfg.tokenizer} declares neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    if objective == "span":
        add_sentinels(tok)
    if objective == "mlm" and tok.mask_token_id is None:
        raise ConfigError(f"tokenizer: {cfg.tokenizer or 'builtin'} has no mask token, which mlm needs")
    return tok


def architecture_config(arch: ArchitectureOptions, objective: str, tokenizer: Any) -> Any:
    """The transformers config of ``arch`` with the tokenizer's vocabulary and special ids (no weights)."""
    import transformers

    ids = {"pad_token_id": tokenizer.pad_token_id,
           "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id,
           "eos_token_id": tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id}
    vocab = len(tokenizer)
    if arch.config:
        try:
            config = transformers.AutoConfig.from_pretrained(arch.config)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"architecture.config: cannot read {arch.config}: {str(exc).splitlines()[0]}") from None
        config.vocab_size = vocab
        for k, v in ids.items():
            setattr(config, k, v)
        return config
    w, L, h, ctx = arch.width, arch.layers, arch.heads, arch.context
    ffn = int(round(w * arch.ffn_mult))
    if arch.family == "gpt2":
        return transformers.GPT2Config(vocab_size=vocab, n_embd=w, n_layer=L, n_head=h, n_positions=ctx, n_inner=ffn,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    if arch.family == "llama":
        return transformers.LlamaConfig(vocab_size=vocab, hidden_size=w, intermediate_size=ffn, num_hidden_layers=L,
                                        num_attention_heads=h, num_key_value_heads=arch.kv_heads or h,
                                        max_position_embeddings=ctx, tie_word_embeddings=True, **ids)
    if arch.family == "bert":
        return transformers.BertConfig(vocab_size=vocab, hidden_size=w, num_hidden_layers=L, num_attention_heads=h,
                                       intermediate_size=ffn, max_position_embeddings=ctx, hidden_dropout_prob=0.0,
                                       attention_probs_dropout_prob=0.0, pad_token_id=tokenizer.pad_token_id)
    return transformers.T5Config(vocab_size=vocab, d_model=w, d_ff=ffn, d_kv=w // h, num_layers=L,
                                 num_decoder_layers=L, num_heads=h, dropout_rate=0.0,
                                 decoder_start_token_id=tokenizer.pad_token_id, n_positions=ctx, **ids)


def model_class(objective: str) -> Any:
    import transformers

    return {"clm": transformers.AutoModelForCausalLM, "mlm": transformers.AutoModelForMaskedLM,
            "span": transformers.AutoModelForSeq2SeqLM}[objective]


def build_scratch(cfg: PretrainConfig) -> Target:
    """A new model of ``cfg.architecture`` (weights drawn under ``cfg.seed``) and its tokenizer."""
    arch = cfg.architecture
    family = arch.family
    objective = cfg.objective_for(family)
    if arch.config is None and objective != DEFAULT_OBJECTIVE[family]:
        raise ConfigError(f"objective: {objective} does not train a {family} model (it takes "
                          f"{DEFAULT_OBJECTIVE[family]}); pick another architecture.family")
    tok = scratch_tokenizer(cfg, objective)
    config = architecture_config(arch, objective, tok)
    family = getattr(config, "model_type", family)
    with seeded(cfg.seed), quiet_transformers():
        try:
            model = model_class(objective).from_config(config)
        except ValueError as exc:
            raise ConfigError(f"architecture.config: a {config.model_type} model cannot be trained with "
                              f"objective {objective}: {str(exc).splitlines()[0]}") from None
    kind = KIND_OF_OBJECTIVE[objective]
    for c in (model.config, getattr(model, "generation_config", None)):
        if c is not None and kind != "encoder":
            c.pad_token_id, c.eos_token_id = tok.pad_token_id, config.eos_token_id
    return Target(model, model, tok, objective, family, kind)


def _mlm_on_encoder(loaded: LoadedModel, seed: int) -> Target:
    """A BERT-style encoder (an encoder-decoder warm start's) with a fresh, tied MLM head; training it trains
    the encoder inside the seq2seq model in place."""
    import transformers

    encoder = loaded.model.get_encoder()
    if getattr(encoder.config, "model_type", "") not in ("bert",):
        raise ConfigError(f"objective: mlm on a received {loaded.family} model needs a BERT-style encoder "
                          f"(this one is {encoder.config.model_type}); use span for T5-style models")
    with seeded(seed), quiet_transformers():
        mlm = transformers.BertForMaskedLM(encoder.config)
    mlm.bert = encoder
    mlm.cls.predictions.decoder.weight = encoder.embeddings.word_embeddings.weight
    head = [p for n, p in mlm.named_parameters() if n.startswith("cls.") and p is not
            encoder.embeddings.word_embeddings.weight]
    return Target(mlm, loaded.model, loaded.tokenizer, "mlm", loaded.family, "seq2seq", fresh_head=head,
                  notes=["mlm trains the encoder of the encoder-decoder model with a fresh MLM head (not saved)"])


def received_target(loaded: LoadedModel, cfg: PretrainConfig) -> Target:
    """The module continued pre-training trains inside the received model (a LoRA adapter is merged first)."""
    from llmcycle.models.adapters import is_peft, merge_adapter

    if is_peft(loaded.model):
        merged = merge_adapter(loaded)
        loaded.model, loaded.source = merged.model, merged.source
    family = loaded.family
    encoder_type = getattr(getattr(loaded.model.config, "encoder", None), "model_type", None)
    default = "mlm" if loaded.kind == "seq2seq" and encoder_type == "bert" else None
    objective = cfg.objective or default or cfg.objective_for(family, loaded.kind)
    tok = loaded.tokenizer
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    if objective == "mlm":
        if loaded.kind != "seq2seq":
            raise ConfigError(f"objective: mlm needs an encoder; {loaded.source} is a {loaded.kind} model (use clm)")
        return _mlm_on_encoder(loaded, cfg.seed)
    if objective == "clm" and loaded.kind != "causal":
        raise ConfigError(f"objective: clm needs a causal model; {loaded.source} is {loaded.kind} (use span or mlm)")
    if objective == "span":
        if loaded.kind != "seq2seq":
            raise ConfigError(f"objective: span needs an encoder-decoder model; {loaded.source} is {loaded.kind}")
        from llmcycle.pretrain.data import sentinel_ids

        if not sentinel_ids(tok):
            raise ModelSourceError(f"objective: span needs T5's sentinel tokens, which {loaded.source}'s tokenizer "
                                   "lacks; use mlm (BERT-style encoders) instead")
    return Target(loaded.model, loaded.model, tok, objective, family, loaded.kind)
