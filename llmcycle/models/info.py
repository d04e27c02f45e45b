"""``describe``: the model card of the 'select' step (kind, family, shape, parameters, memory).

Hub ids with a bundled architecture are described offline: the model is built on the meta device
(no memory, no weights), which gives the exact parameter count of the real architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmcycle.core.errors import ModelSourceError
from llmcycle.estimate import ArchSpec
from llmcycle.estimate.memory import estimate_memory
from llmcycle.models.architectures import bundled_config, bundled_config_dict
from llmcycle.models.build import auto_class, untie_lm_head
from llmcycle.models.builtins import builtin_config, get_builtin
from llmcycle.models.loader import LoadedModel, _hub_config, _hub_error, hub_reachable, load_model, model_kind
from llmcycle.models.quantized import count_params, is_int8, weight_bytes
from llmcycle.models.tokenizer import offline_tokenizer


@dataclass
class ModelCard:
    """What the 'select' step needs to know about a model."""

    source: str
    kind: str
    family: str
    weights: str  # pretrained | random (untrained) | not loaded (architecture only)
    layers: str
    heads: str
    hidden_size: int | None
    ffn_size: int | None
    vocab_size: int | None
    context_length: int | None
    total_params: int
    trainable_params: int
    dtype: str
    memory: dict[str, float] = field(default_factory=dict)  # label -> GB
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.source} ({self.kind}, {self.family})"

    def rows(self) -> list[tuple[str, str]]:
        pct = 100 * self.trainable_params / self.total_params if self.total_params else 0.0
        rows = [("kind", self.kind), ("family", self.family), ("weights", self.weights), ("layers", self.layers),
                ("attention heads", self.heads), ("hidden size", str(self.hidden_size)),
                ("feed-forward size", str(self.ffn_size)), ("vocabulary", f"{self.vocab_size:,}" if self.vocab_size
                                                             else "?"),
                ("context length", str(self.context_length)),
                ("parameters", f"{self.total_params:,} ({self.total_params / 1e6:,.1f}M)"),
                ("trainable", f"{self.trainable_params:,} ({pct:.2f}%)")]
        rows += [(f"memory: {k}", f"{v:,.2f} GB" if v >= 0.1 else f"{v * 1e3:,.2f} MB") for k, v in self.memory.items()]
        rows += [("note", n) for n in self.notes]
        return rows

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _get(config: Any, *names: str) -> Any:
    for n in names:
        v = getattr(config, n, None)
        if v is not None:
            return v
    return None


def _shape(config: Any) -> dict[str, Any]:
    """Layers, heads and sizes through transformers' attribute aliases (hidden_size, ...)."""
    enc, dec = getattr(config, "encoder", None), getattr(config, "decoder", None)
    if enc is not None and dec is not None and not isinstance(enc, bool):  # EncoderDecoderModel
        e, d = _shape(enc), _shape(dec)
        return dict(layers=f"{e['layers']} encoder + {d['layers']} decoder", heads=e["heads"],
                    hidden_size=e["hidden_size"], ffn_size=e["ffn_size"], vocab_size=d["vocab_size"],
                    context_length=e["context_length"])
    n_layers = _get(config, "num_hidden_layers")
    dec_layers = _get(config, "num_decoder_layers", "decoder_layers")
    layers = f"{n_layers} encoder + {dec_layers} decoder" if getattr(config, "is_encoder_decoder", False) \
        else str(n_layers)
    heads = str(_get(config, "num_attention_heads"))
    kv = _get(config, "num_key_value_heads")
    if kv and kv != _get(config, "num_attention_heads"):
        heads += f" query / {kv} key-value (grouped-query)"
    return dict(layers=layers, heads=heads, hidden_size=_get(config, "hidden_size"),
                ffn_size=_get(config, "intermediate_size", "d_ff", "encoder_ffn_dim", "n_inner")
                or (4 * _get(config, "hidden_size") if model_kind(config) == "causal" else None),
                vocab_size=_get(config, "vocab_size"),
                context_length=_get(config, "max_position_embeddings", "n_positions"))


def _architecture_only(source: str) -> tuple[Any, Any] | None:
    """(config, meta-device model) for a bundled hub id, without weights; None when not bundled."""
    import torch

    config = bundled_config(source)
    if config is None:
        return None
    with torch.device("meta"):
        model = auto_class(model_kind(config)).from_config(config)
        untie_lm_head(model, bundled_config_dict(source) or {})
    return config, model


def _memory(n_params: int, trainable: int, dtype: str) -> dict[str, float]:
    infer = estimate_memory(n_params, dtype=dtype, mode="inference")
    train = estimate_memory(n_params, dtype=dtype, mode="training", trainable_params=trainable)
    return {f"weights ({dtype})": infer.weights / 1e9,
            "full fine-tuning, Adam (rule of thumb)": train.total / 1e9}


def describe(source: str | LoadedModel, weights: str = "pretrained", dtype: str = "fp32") -> ModelCard:
    """The model card of ``source``: a loaded model, or anything ``load_model`` accepts.

    A hub id whose architecture ships with llmcycle is described without loading weights.
    """
    notes: list[str] = []
    if isinstance(source, LoadedModel):
        loaded: LoadedModel | None = source
    else:
        arch = None
        if not source.startswith("builtin:") and (weights == "random" or not hub_reachable()):
            arch = _architecture_only(source)
        loaded = None if arch is not None else load_model(source, weights=weights, dtype=dtype)
    if loaded is not None:
        config, model, src = loaded.model.config, loaded.model, loaded.source
        state = "random (UNTRAINED)" if loaded.untrained else "pretrained"
        notes += loaded.notes
    else:
        config, model = arch  # type: ignore[misc]
        src, state = source, "not loaded: bundled architecture (offline), counts are exact"
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    memory = _memory(total, trainable, dtype)
    if loaded is not None and is_int8(model):  # int8 weights are not nn.Parameters: count them from the modules
        total, trainable = count_params(model), 0
        state += ", int8 dynamic quantisation (inference only)"
        memory = {"weights (int8 linear layers, the rest fp32; as loaded)": weight_bytes(model) / 1e9}
        dtype = "int8"
    return ModelCard(source=src, kind=model_kind(config) if loaded is None else loaded.kind,
                     family=getattr(config, "model_type", "?"), weights=state, total_params=total,
                     trainable_params=trainable, dtype=dtype, memory=memory, notes=notes, **_shape(config))


def load_tokenizer(source: str) -> Any:
    """The tokenizer of ``source`` alone (no weights): builtins use the offline tokenizer."""
    from pathlib import Path

    if source.startswith("builtin:"):
        return offline_tokenizer(get_builtin(source).tok_kind)
    from transformers import AutoTokenizer

    if Path(source).is_dir():
        try:
            return AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError):
            raise ModelSourceError(f"{source} has no tokenizer files (tokenizer.save_pretrained)") from None
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=not hub_reachable())
    except (OSError, ValueError):
        raise _hub_error(source, "the tokenizer of") from None


def model_config(source: str, weights_free: bool = False) -> Any:
    """The transformers config of ``source`` without loading weights where possible.

    Builtins are built (seconds), or with ``weights_free`` their config alone is made; bundled hub ids
    use the shipped config; local directories read their config.json; other hub ids ask the hub.
    """
    from pathlib import Path

    if source.startswith("builtin:"):
        if weights_free:
            return builtin_config(source)
        return load_model(source).model.config
    if Path(source).is_dir():
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise ModelSourceError(f"{source}/config.json cannot be read: {str(exc).splitlines()[0]}") from None
    config = bundled_config(source)
    return config if config is not None else _hub_config(source, None, hub_reachable())


def arch_spec(source: str, weights_free: bool = False) -> Any:
    """``llmcycle.estimate.ArchSpec`` of a model source (for memory estimates with a batch shape); with
    ``weights_free`` no weights are loaded or built (``llmcycle plan``)."""
    return ArchSpec.from_config(model_config(source, weights_free=weights_free))
