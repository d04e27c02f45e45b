"""What a model's memory depends on: ``ArchSpec`` and the parameter-count formulas.

``ArchSpec.from_config`` reads a transformers ``PretrainedConfig`` (T5/mT5/UMT5, BART, GPT-2,
Llama/Mistral/Qwen2, BERT, and ``EncoderDecoderModel`` with BERT halves) and counts the
parameters from the architecture formula, exactly as ``model.num_parameters()`` would, without
building the model. It also records the per-stack facts the activation estimate needs (norm
kind, activation function, dropout rates, position scheme), so the estimate can follow what
transformers actually saves for backward.

Nothing here imports torch or transformers: a config is read by attribute only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from llmcycle.core.errors import LLMCycleError

Kind = Literal["seq2seq", "causal", "encoder"]
Norm = Literal["layernorm", "rmsnorm", "rmsnorm_t5"]
Position = Literal["relative_bias", "learned", "rope", "none"]
Head = Literal["lm", "lm_transform", "none"]

SUPPORTED_MODEL_TYPES = ("t5", "mt5", "umt5", "bart", "gpt2", "llama", "mistral", "qwen2", "bert", "encoder-decoder")


@dataclass(frozen=True)
class StackSpec:
    """One stack of transformer layers (an encoder or a decoder) as the memory model sees it."""

    layers: int
    """Number of layers (blocks)."""
    hidden_size: int
    """Model width d."""
    n_heads: int
    """Query heads."""
    n_kv_heads: int
    """Key/value heads (fewer than n_heads with grouped-query attention)."""
    head_dim: int
    """Width of one head; n_heads * head_dim may differ from hidden_size (T5)."""
    ffn_size: int
    """Inner width of the feed-forward block."""
    ffn_gated: bool
    """Gated FFN (act(x W0) * (x W1), as T5 gated-gelu and Llama SwiGLU)."""
    activation: str
    """transformers ACT2FN name of the FFN activation (decides how many tensors it saves)."""
    norm: Norm = "layernorm"
    """'layernorm' (fused kernel), 'rmsnorm' (Python ops, Llama: fp32 copy, result cast back) or
    'rmsnorm_t5' (Python ops, T5: the input itself is scaled, promoting to fp32 in half precision)."""
    pre_norm: bool = True
    """Norm before each sublayer (T5, GPT-2, Llama) or after it (BERT, BART)."""
    cross_attention: bool = False
    """Decoder layers also attend to the encoder output."""
    attention_dropout: float = 0.0
    """Dropout on attention probabilities (training)."""
    hidden_dropout: float = 0.0
    """Dropout on each sublayer output and on the embeddings (training)."""
    ffn_dropout: float = 0.0
    """Dropout inside the FFN, after the activation (T5 dropout_rate, BART activation_dropout)."""
    final_dropout: bool = False
    """Dropout after the stack's final norm (T5)."""
    position: Position = "learned"
    """Position scheme: T5 relative bias, learned table, rotary, or none."""
    softmax_fp32: bool = False
    """Eager attention takes the softmax in fp32 and casts it back (Llama family)."""

    @property
    def inner(self) -> int:
        """Width of all query heads together."""
        return self.n_heads * self.head_dim

    @property
    def kv_inner(self) -> int:
        """Width of all key/value heads together."""
        return self.n_kv_heads * self.head_dim

    def layer_params(self) -> int:
        """Approximate parameters of one layer (weights only, no biases or norms)."""
        attn = 2 * self.hidden_size * (self.inner + self.kv_inner)
        if self.cross_attention:
            attn *= 2
        ffn = (3 if self.ffn_gated else 2) * self.hidden_size * self.ffn_size
        return attn + ffn


@dataclass(frozen=True)
class ArchSpec:
    """Everything memory depends on, for one model architecture.

    ``n_params`` is the exact count of unique parameters (tied embeddings counted once);
    ``trainable_params`` defaults to all of them (set it for LoRA or frozen layers).
    """

    kind: Kind
    """'seq2seq' (encoder-decoder), 'causal' (decoder-only) or 'encoder' (encoder-only)."""
    model_type: str
    """transformers model_type the spec was read from (t5, bart, gpt2, llama, bert, ...)."""
    n_params: int
    """All parameters, each shared tensor counted once."""
    vocab_size: int
    """Vocabulary size (rows of the embedding, columns of the LM head)."""
    tied_embeddings: bool
    """LM head shares the input embedding matrix."""
    max_positions: int | None
    """Longest sequence the position scheme allows (None: unbounded, as relative bias)."""
    encoder: StackSpec | None = None
    """The encoder stack (seq2seq and encoder kinds)."""
    decoder: StackSpec | None = None
    """The decoder stack (seq2seq and causal kinds)."""
    head: Head = "lm"
    """Output head: plain linear 'lm', BERT's dense+act+norm 'lm_transform', or 'none'."""
    lm_head_params: int = 0
    """Parameters of the output projection (its gradient is the first one made in backward)."""
    largest_param: int = 0
    """Elements of the largest single parameter tensor (optimiser step temporaries)."""
    trainable_params: int | None = None
    """Parameters that get gradients and optimiser state; None means all."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Caveats found while reading the config."""

    # --- summary views the CLI shows ------------------------------------------------------
    @property
    def main(self) -> StackSpec:
        """The stack that describes the model's width (decoder for causal, else encoder)."""
        stack = self.decoder if self.kind == "causal" else self.encoder
        assert stack is not None
        return stack

    @property
    def hidden_size(self) -> int:
        return self.main.hidden_size

    @property
    def n_heads(self) -> int:
        return self.main.n_heads

    @property
    def head_dim(self) -> int:
        return self.main.head_dim

    @property
    def ffn_size(self) -> int:
        return self.main.ffn_size

    @property
    def ffn_gated(self) -> bool:
        return self.main.ffn_gated

    @property
    def encoder_layers(self) -> int:
        return self.encoder.layers if self.encoder else 0

    @property
    def decoder_layers(self) -> int:
        return self.decoder.layers if self.decoder else 0

    @property
    def n_trainable(self) -> int:
        """Trainable parameters (all unless ``trainable_params`` says otherwise)."""
        return self.n_params if self.trainable_params is None else self.trainable_params

    def with_trainable(self, trainable_params: int | None) -> ArchSpec:
        """A copy with a different trainable-parameter count (LoRA, frozen layers)."""
        return replace(self, trainable_params=trainable_params)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data view (for JSON and tables)."""
        data = asdict(self)
        data.update(hidden_size=self.hidden_size, n_heads=self.n_heads, head_dim=self.head_dim,
                    ffn_size=self.ffn_size, ffn_gated=self.ffn_gated,
                    encoder_layers=self.encoder_layers, decoder_layers=self.decoder_layers)
        return data

    def rows(self) -> list[tuple[str, str]]:
        """(field, value) pairs for a two-column table."""
        return [
            ("kind", self.kind), ("model_type", self.model_type), ("parameters", f"{self.n_params:,}"),
            ("trainable", f"{self.n_trainable:,}"), ("hidden size", str(self.hidden_size)),
            ("heads x head dim", f"{self.n_heads} x {self.head_dim}"),
            ("kv heads", str(self.main.n_kv_heads)),
            ("ffn size", f"{self.ffn_size}{' (gated)' if self.ffn_gated else ''}"),
            ("encoder layers", str(self.encoder_layers)), ("decoder layers", str(self.decoder_layers)),
            ("vocab size", str(self.vocab_size)), ("tied embeddings", str(self.tied_embeddings)),
            ("max positions", str(self.max_positions) if self.max_positions else "unbounded"),
        ]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        """Inverse of ``to_dict`` (derived summary keys are ignored)."""
        names = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in names}
        for stack in ("encoder", "decoder"):
            if isinstance(kwargs.get(stack), dict):
                kwargs[stack] = StackSpec(**kwargs[stack])
        kwargs["notes"] = tuple(kwargs.get("notes", ()))
        return cls(**kwargs)

    @classmethod
    def from_model(cls, model: Any) -> ArchSpec:
        """The spec of a live model (transformers or PEFT-wrapped), with its actual parameter counts.

        ``n_params`` and ``trainable_params`` are counted from the module (so adapters and frozen
        layers are exact); the structure comes from ``model.config``.
        """
        base = getattr(model, "get_base_model", lambda: model)()
        spec = cls.from_config(base.config)
        params = {id(p): p for p in model.parameters()}.values()
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        return replace(spec, n_params=total, trainable_params=trainable)

    @classmethod
    def from_config(cls, config: Any) -> ArchSpec:
        """Read a transformers ``PretrainedConfig`` (or anything with the same attributes)."""
        model_type = getattr(config, "model_type", None)
        reader = _READERS.get(model_type or "")
        if reader is None:
            raise LLMCycleError(
                f"config: model_type {model_type!r} is not supported by the estimator; "
                f"supported: {', '.join(SUPPORTED_MODEL_TYPES)} (or pass n_params instead of a config)"
            )
        return reader(config)


# --- helpers ------------------------------------------------------------------------------


def _get(config: Any, *names: str, default: Any = None) -> Any:
    """First attribute of ``config`` among ``names`` that is set (not None)."""
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def _tied(config: Any, default: bool = True) -> bool:
    value = getattr(config, "tie_word_embeddings", None)
    return default if value is None else bool(value)


# --- T5 / mT5 / UMT5 -------------------------------------------------------------------------


def _t5_stack(config: Any, layers: int, decoder: bool) -> StackSpec:
    proj = str(_get(config, "feed_forward_proj", default="relu"))
    gated = proj.startswith("gated-")
    act = proj.split("-", 1)[1] if gated else proj
    if act == "gelu" and gated:
        act = "gelu_new"  # transformers maps T5's gated-gelu to gelu_new (config.dense_act_fn)
    act = str(_get(config, "dense_act_fn", default=act))
    rate = float(_get(config, "dropout_rate", default=0.1))
    return StackSpec(
        layers=layers, hidden_size=config.d_model, n_heads=config.num_heads, n_kv_heads=config.num_heads,
        head_dim=config.d_kv, ffn_size=config.d_ff, ffn_gated=gated, activation=act, norm="rmsnorm_t5",
        pre_norm=True, cross_attention=decoder, attention_dropout=rate, hidden_dropout=rate,
        ffn_dropout=rate, final_dropout=True, position="relative_bias",
    )


def _t5_tied(config: Any) -> bool:
    """Whether the LM head shares the embedding, as the checkpoint has it.

    transformers 5.x forces ``T5Config.tie_word_embeddings`` to True and keeps the saved value as
    ``scale_decoder_outputs`` (False for T5 v1.1 / FLAN-T5, whose checkpoints carry a separate LM
    head that ``from_pretrained`` keeps). We follow the checkpoint's architecture.
    """
    scale = getattr(config, "scale_decoder_outputs", None)
    return _tied(config, default=True) if scale is None else bool(scale)


def _read_t5(config: Any) -> ArchSpec:
    n_enc = config.num_layers
    n_dec = _get(config, "num_decoder_layers", default=n_enc)
    enc, dec = _t5_stack(config, n_enc, False), _t5_stack(config, n_dec, True)
    d, inner, f, vocab = config.d_model, config.num_heads * config.d_kv, config.d_ff, config.vocab_size
    ffn = (3 if enc.ffn_gated else 2) * d * f
    bias_table = config.relative_attention_num_buckets * config.num_heads
    per_layer_bias = config.model_type == "umt5"  # UMT5: a bias table in every layer, T5: one per stack
    enc_layer = 4 * d * inner + ffn + 2 * d
    dec_layer = 8 * d * inner + ffn + 3 * d
    n = vocab * d  # shared embedding
    n += n_enc * enc_layer + d + bias_table * (n_enc if per_layer_bias else 1)
    n += n_dec * dec_layer + d + bias_table * (n_dec if per_layer_bias else 1)
    tied = _t5_tied(config)
    if not tied:
        n += vocab * d
    return ArchSpec(
        kind="seq2seq", model_type=config.model_type, n_params=n, vocab_size=vocab, tied_embeddings=tied,
        max_positions=None, encoder=enc, decoder=dec, head="lm", lm_head_params=vocab * d,
        largest_param=max(vocab * d, d * f, d * inner),
    )


# --- BART --------------------------------------------------------------------------------------


def _bart_stack(config: Any, layers: int, heads: int, ffn: int, decoder: bool) -> StackSpec:
    d = config.d_model
    return StackSpec(
        layers=layers, hidden_size=d, n_heads=heads, n_kv_heads=heads, head_dim=d // heads, ffn_size=ffn,
        ffn_gated=False, activation=str(config.activation_function), norm="layernorm", pre_norm=False,
        cross_attention=decoder, attention_dropout=float(config.attention_dropout or 0.0),
        hidden_dropout=float(config.dropout or 0.0), ffn_dropout=float(config.activation_dropout or 0.0),
        position="learned",
    )


def _read_bart(config: Any) -> ArchSpec:
    d, vocab, pos = config.d_model, config.vocab_size, config.max_position_embeddings
    enc = _bart_stack(config, config.encoder_layers, config.encoder_attention_heads, config.encoder_ffn_dim, False)
    dec = _bart_stack(config, config.decoder_layers, config.decoder_attention_heads, config.decoder_ffn_dim, True)
    attn = 4 * (d * d + d)
    enc_layer = attn + 2 * d + (2 * d * enc.ffn_size + enc.ffn_size + d) + 2 * d
    dec_layer = 2 * attn + 4 * d + (2 * d * dec.ffn_size + dec.ffn_size + d) + 2 * d
    n = vocab * d  # shared embedding, used by both stacks
    n += 2 * ((pos + 2) * d + 2 * d)  # learned positions (offset 2) and layernorm_embedding per stack
    n += enc.layers * enc_layer + dec.layers * dec_layer
    tied = _tied(config, default=True)
    if not tied:
        n += vocab * d
    return ArchSpec(
        kind="seq2seq", model_type="bart", n_params=n, vocab_size=vocab, tied_embeddings=tied, max_positions=pos,
        encoder=enc, decoder=dec, head="lm", lm_head_params=vocab * d,
        largest_param=max(vocab * d, d * max(enc.ffn_size, dec.ffn_size)),
    )


# --- GPT-2 ---------------------------------------------------------------------------------------


def _read_gpt2(config: Any) -> ArchSpec:
    d, vocab, pos = config.n_embd, config.vocab_size, config.n_positions
    f = _get(config, "n_inner", default=4 * d)
    stack = StackSpec(
        layers=config.n_layer, hidden_size=d, n_heads=config.n_head, n_kv_heads=config.n_head,
        head_dim=d // config.n_head, ffn_size=f, ffn_gated=False, activation=str(config.activation_function),
        norm="layernorm", pre_norm=True, cross_attention=bool(getattr(config, "add_cross_attention", False)),
        attention_dropout=float(config.attn_pdrop), hidden_dropout=float(config.resid_pdrop), position="learned",
    )
    layer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d)
    if stack.cross_attention:
        layer += (2 * d * d + 2 * d) + (d * d + d) + (d * d + d) + 2 * d  # c_attn(2d), q_attn, c_proj, ln
    n = vocab * d + pos * d + config.n_layer * layer + 2 * d
    tied = _tied(config, default=True)
    if not tied:
        n += vocab * d
    notes = ()
    if float(config.embd_pdrop) != float(config.resid_pdrop):
        notes = ("embedding dropout differs from residual dropout; the estimate uses the residual rate",)
    return ArchSpec(
        kind="causal", model_type="gpt2", n_params=n, vocab_size=vocab, tied_embeddings=tied, max_positions=pos,
        decoder=stack, head="lm", lm_head_params=vocab * d, largest_param=max(vocab * d, d * f), notes=notes,
    )


# --- Llama / Mistral / Qwen2 ---------------------------------------------------------------------


def _read_llama(config: Any) -> ArchSpec:
    d, vocab, heads = config.hidden_size, config.vocab_size, config.num_attention_heads
    kv_heads = _get(config, "num_key_value_heads", default=heads)
    head_dim = _get(config, "head_dim", default=d // heads)
    f = config.intermediate_size
    stack = StackSpec(
        layers=config.num_hidden_layers, hidden_size=d, n_heads=heads, n_kv_heads=kv_heads, head_dim=head_dim,
        ffn_size=f, ffn_gated=True, activation=str(_get(config, "hidden_act", default="silu")), norm="rmsnorm",
        pre_norm=True, attention_dropout=float(_get(config, "attention_dropout", default=0.0)), position="rope",
        softmax_fp32=True,
    )
    inner, kv = heads * head_dim, kv_heads * head_dim
    if config.model_type == "qwen2":
        qkv_bias, o_bias, mlp_bias = True, False, False
    else:
        qkv_bias = o_bias = bool(getattr(config, "attention_bias", False))
        mlp_bias = bool(getattr(config, "mlp_bias", False))
    attn = d * inner + 2 * d * kv + inner * d + (inner + 2 * kv if qkv_bias else 0) + (d if o_bias else 0)
    mlp = 3 * d * f + (2 * f + d if mlp_bias else 0)
    n = vocab * d + config.num_hidden_layers * (attn + mlp + 2 * d) + d
    tied = _tied(config, default=False)
    if not tied:
        n += vocab * d
    return ArchSpec(
        kind="causal", model_type=config.model_type, n_params=n, vocab_size=vocab, tied_embeddings=tied,
        max_positions=_get(config, "max_position_embeddings"), decoder=stack, head="lm",
        lm_head_params=vocab * d, largest_param=max(vocab * d, d * f),
    )


# --- BERT and EncoderDecoderModel ----------------------------------------------------------------


def _bert_stack(config: Any) -> StackSpec:
    d, heads = config.hidden_size, config.num_attention_heads
    return StackSpec(
        layers=config.num_hidden_layers, hidden_size=d, n_heads=heads, n_kv_heads=heads, head_dim=d // heads,
        ffn_size=config.intermediate_size, ffn_gated=False, activation=str(config.hidden_act), norm="layernorm",
        pre_norm=False, cross_attention=bool(getattr(config, "add_cross_attention", False)),
        attention_dropout=float(config.attention_probs_dropout_prob), hidden_dropout=float(config.hidden_dropout_prob),
        position="learned",
    )


def _bert_params(config: Any, pooler: bool, lm_head: bool) -> int:
    """Parameters of BertModel (with or without pooler) or BertLMHeadModel (lm_head)."""
    d, f, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    emb = (vocab + config.max_position_embeddings + config.type_vocab_size) * d + 2 * d
    attn = 4 * (d * d + d) + 2 * d
    layer = attn + (d * f + f) + (f * d + d) + 2 * d
    if getattr(config, "add_cross_attention", False):
        layer += attn
    n = emb + config.num_hidden_layers * layer
    if pooler:
        n += d * d + d
    if lm_head:
        n += (d * d + d) + 2 * d + vocab  # transform dense + LayerNorm, output bias
        if not _tied(config, default=True):
            n += vocab * d
    return n


def _read_bert(config: Any) -> ArchSpec:
    """A BERT config alone: the encoder (BertModel with pooler), or BertLMHeadModel if is_decoder."""
    stack = _bert_stack(config)
    d, vocab = config.hidden_size, config.vocab_size
    largest = max(vocab * d, d * config.intermediate_size)
    if getattr(config, "is_decoder", False):
        return ArchSpec(
            kind="causal", model_type="bert", n_params=_bert_params(config, pooler=False, lm_head=True),
            vocab_size=vocab, tied_embeddings=_tied(config), max_positions=config.max_position_embeddings,
            decoder=stack, head="lm_transform", lm_head_params=vocab * d, largest_param=largest,
        )
    return ArchSpec(
        kind="encoder", model_type="bert", n_params=_bert_params(config, pooler=True, lm_head=False),
        vocab_size=vocab, tied_embeddings=False, max_positions=config.max_position_embeddings,
        encoder=stack, head="none", largest_param=largest,
        notes=("encoder-only: counts BertModel with its pooler; a task head adds its own parameters",),
    )


def _read_encoder_decoder(config: Any) -> ArchSpec:
    enc_cfg, dec_cfg = config.encoder, config.decoder
    for part, sub in (("encoder", enc_cfg), ("decoder", dec_cfg)):
        if getattr(sub, "model_type", None) != "bert":
            raise LLMCycleError(
                f"config.{part}: model_type {getattr(sub, 'model_type', None)!r} is not supported inside "
                "an EncoderDecoderModel by the estimator; supported: bert"
            )
    if enc_cfg.hidden_size != dec_cfg.hidden_size:
        raise LLMCycleError("config: encoder and decoder hidden sizes differ (enc_to_dec_proj is not modelled)")
    enc = _bert_stack(enc_cfg)
    dec = replace(_bert_stack(dec_cfg), cross_attention=True)
    n = _bert_params(enc_cfg, pooler=True, lm_head=False) + _bert_params(dec_cfg, pooler=False, lm_head=True)
    d, vocab = dec_cfg.hidden_size, dec_cfg.vocab_size
    return ArchSpec(
        kind="seq2seq", model_type="encoder-decoder", n_params=n, vocab_size=vocab, tied_embeddings=_tied(dec_cfg),
        max_positions=min(enc_cfg.max_position_embeddings, dec_cfg.max_position_embeddings), encoder=enc,
        decoder=dec, head="lm_transform", lm_head_params=vocab * d,
        largest_param=max(enc_cfg.vocab_size * enc_cfg.hidden_size, vocab * d),
        notes=("the encoder's pooler is counted but gets no gradient in seq2seq training",),
    )


_READERS = {
    "t5": _read_t5, "mt5": _read_t5, "umt5": _read_t5, "bart": _read_bart, "gpt2": _read_gpt2,
    "llama": _read_llama, "mistral": _read_llama, "qwen2": _read_llama, "bert": _read_bert,
    "encoder-decoder": _read_encoder_decoder,
}
