"""Activation memory of one training step, counted from the architecture.

The count follows what PyTorch autograd actually keeps for backward in the transformers
implementations (checked against ``torch.autograd.graph.saved_tensors_hooks`` on tiny models in
``tests/estimate``): per layer, the input of every linear layer, the tensors each norm,
activation function and dropout saves, and for attention either the whole (Tq x Tk)
probability matrix (eager attention, or SDPA's "math" fallback) or only Q, K, V, the output and
a log-sum-exp (a fused flash / memory-efficient kernel). On top of that: the LM head's logits and
log-probabilities, the transient gradients alive while one layer runs backward, and with
gradient checkpointing only each layer's input plus one layer recomputed at a time.

Facts of transformers 5.x / torch 2.x this module encodes (re-check them when either moves;
the saved-tensor tests in ``tests/estimate/test_activations.py`` will say when they break):

- On CPU the default ``attn_implementation`` is ``sdpa``. Its fused CPU kernel is used only when
  there is no attention dropout and no mask that needs a gradient; in training with dropout
  (BERT, GPT-2, T5), or with T5's learned relative-position bias (folded into the mask), it falls
  back to the math path, which saves the probability matrix like eager attention does, and on
  CPU runs fp16/bf16 inputs in fp32.
- On CPU, dropout saves a mask in the activation dtype (``x * bernoulli_noise``), 4 bytes per
  element in fp32; on CUDA the fused kernel saves a 1-byte bool mask.
- T5 and Llama norms are RMSNorms written in Python ops: they save an fp32 copy of their input
  and the normalised tensor; ``nn.LayerNorm`` saves only its input (plus per-token statistics).
- ``gelu_new`` (T5 gated-gelu, GPT-2) is written in Python ops and saves four tensors of the FFN
  width; ``gelu``, ``silu`` and ``gelu_pytorch_tanh`` are fused and save one.
- Llama-family eager attention takes its softmax in fp32; causal-LM losses run on fp32 logits.

All figures are in bytes. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from llmcycle.core.errors import LLMCycleError
from llmcycle.estimate.arch import ArchSpec, StackSpec

AttentionImpl = Literal["auto", "eager", "sdpa", "flash"]
Device = Literal["cpu", "cuda"]
ATTENTION_IMPLS = ("auto", "eager", "sdpa", "flash")
DEVICES = ("cpu", "cuda")

# Tensors of the FFN width an activation function saves (relu, tanh, sigmoid keep their output,
# counted with the FFN). Activations written in Python ops save every intermediate.
_ACT_SAVED: dict[str, int] = {
    "relu": 0, "gelu": 1, "gelu_pytorch_tanh": 1, "silu": 1, "swish": 1, "gelu_new": 4,
    "gelu_fast": 7, "quick_gelu": 2, "gelu_python": 1, "gelu_10": 1, "tanh": 0, "sigmoid": 0,
}
_STAT_BYTES = 4  # norms keep fp32 per-token statistics (mean/rstd or rsqrt)


@dataclass(frozen=True)
class Shape:
    """A training batch: sequences per step and token lengths."""

    batch_size: int
    input_len: int
    output_len: int = 0


@dataclass(frozen=True)
class Precision:
    """Bytes per element of activations, of dropout masks, and inside SDPA's math path."""

    act: float
    mask: float
    math: float | None = None
    """SDPA's math fallback on CPU runs half-precision inputs in fp32 (4); None: as ``act``."""

    @property
    def math_bytes(self) -> float:
        return self.act if self.math is None else self.math

    @classmethod
    def for_device(cls, act: float, device: str) -> Precision:
        """CPU: dropout masks in the activation dtype, math SDPA in fp32; CUDA: 1-byte masks."""
        if device == "cpu":
            return cls(act=act, mask=act, math=4.0)
        return cls(act=act, mask=1.0, math=act)


@dataclass(frozen=True)
class ActivationEstimate:
    """Activation memory of a training step (bytes), and how it was counted."""

    saved: int
    """Tensors saved for backward at the end of the forward pass (what saved-tensor hooks see);
    with checkpointing, every layer's input plus one layer recomputed."""
    logits: int
    """Logits held while the loss is computed (not saved for backward, but alive)."""
    per_layer: dict[str, int]
    """Saved bytes of one layer of each stack ('encoder', 'decoder')."""
    layer_input: dict[str, int]
    """Bytes of one layer's input per stack (all a checkpointed layer keeps)."""
    layer_peak: dict[str, int]
    """Peak bytes while one layer of each stack runs backward (its saved tensors + gradients)."""
    non_layer: dict[str, int]
    """Saved bytes outside the layers: per stack (embeddings, final norm, output) and 'head' (+ loss)."""
    head_grad_logits: int
    """One logits-sized gradient: the head's backward holds two (log-probs' and logits')."""
    layers: dict[str, int]
    """Number of layers per stack."""
    checkpointing: bool
    """Whether gradient checkpointing was assumed."""
    attention_paths: dict[str, str]
    """Per stack and attention kind, the path counted: 'math' (full T x T matrices) or 'flash'."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        """Saved tensors plus logits: the activation line of a memory estimate."""
        return self.saved + self.logits

    def held(self, stack: str) -> int:
        """Bytes one layer of ``stack`` holds until backward reaches it."""
        return self.layer_input[stack] if self.checkpointing else self.per_layer[stack]


def attention_path(stack: StackSpec, impl: str, device: str, training: bool, cross: bool = False) -> str:
    """Which attention computation runs: 'eager', SDPA's 'math' fallback (both save the T x T
    probabilities) or a fused 'flash' kernel (saves Q, K, V, the output and a log-sum-exp)."""
    if impl not in ATTENTION_IMPLS:
        raise LLMCycleError(f"attention: unknown implementation {impl!r}; valid: {', '.join(ATTENTION_IMPLS)}")
    if impl == "eager":
        return "eager"
    if impl == "flash" or not training:
        return "flash"
    # sdpa (what 'auto' resolves to for every supported family)
    if device == "cuda":
        return "flash"  # flash / memory-efficient kernels handle dropout and (T5) additive bias
    bias_grad = stack.position == "relative_bias" and not cross  # learned bias folded into the mask
    return "math" if stack.attention_dropout > 0 or bias_grad else "flash"


def _norm(tokens: int, s: StackSpec, p: Precision) -> float:
    """Bytes a norm saves: its input (an fp32 copy for RMSNorm), the normalised tensor for
    Python RMSNorms, and per-token fp32 statistics."""
    d = s.hidden_size
    if s.norm == "layernorm":
        return tokens * (d * p.act + 2 * _STAT_BYTES)
    per_elem = 4 + p.act  # fp32 input (the input itself in fp32) and the normalised tensor
    if s.norm == "rmsnorm_t5" and p.act < 4:
        per_elem += p.act  # T5 scales the half-precision input itself, which is kept too
    return tokens * (d * per_elem + _STAT_BYTES)


def _dropout(elements: int, rate: float, p: Precision) -> float:
    """A dropout mask, kept only when dropout is active."""
    return elements * p.mask if rate > 0 else 0.0


def _attention_core(b: int, tq: int, tk: int, s: StackSpec, path: str, p: Precision) -> float:
    """Bytes saved by softmax(Q K^T) V and the output projection's input, one layer."""
    q, out = b * tq * s.inner, b * tq * s.inner  # the o-projection's input is in the activation dtype
    if path == "flash":
        kv = 2 * b * tk * s.kv_inner  # K, V unexpanded (GQA handled in the kernel)
        return (q + out + kv) * p.act + b * s.n_heads * tq * _STAT_BYTES  # + log-sum-exp
    inner = p.math_bytes if path == "math" else p.act  # math SDPA on CPU upcasts half inputs
    mask = p.math_bytes if path == "math" else p.mask
    kv = 2 * b * tk * s.inner  # K, V expanded to all heads (repeat_kv)
    probs = b * s.n_heads * tq * tk
    probs_bytes = inner
    if path == "eager" and s.softmax_fp32 and p.act < 4:
        probs_bytes = 4 + p.act  # the fp32 softmax, and its cast back
    saved = (q + kv) * inner + probs * probs_bytes + out * p.act
    if s.attention_dropout > 0:
        saved += probs * (mask + inner)  # dropout mask and the dropped probabilities
    return saved


def _ffn(tokens: int, s: StackSpec, p: Precision) -> float:
    """Bytes saved inside the FFN (tensors of the FFN width), after its input."""
    act = _ACT_SAVED.get(s.activation, 1)
    saves_output = s.activation in ("relu", "tanh", "sigmoid")  # these keep their output, not input
    if s.ffn_gated:
        n = act + 2  # the activation's output and the linear branch, both saved by the product
    else:
        n = act + (1 if saves_output or s.ffn_dropout == 0 else 0)  # output kept by itself or by W_out
    if s.ffn_dropout > 0:
        per_elem = (n + 1) * p.act + p.mask  # dropout mask, and the dropped tensor W_out saves
    else:
        per_elem = (n + (1 if s.ffn_gated else 0)) * p.act  # gated: the product W_out saves
    return tokens * s.ffn_size * per_elem


def _attention_transient(b: int, tq: int, tk: int, s: StackSpec, path: str, p: Precision) -> float:
    """Extra bytes at the worst moment of an attention block's backward.

    Math path: the gradients of the dropped and of the plain probabilities, then of the scores,
    each (Tq x Tk), appear while the saved matrices are released one by one: one matrix more
    than was saved with dropout, two without. Flash path: the gradients of Q, K and V.
    """
    if path == "flash":
        return 3 * b * tq * s.inner * p.act
    probs = b * s.n_heads * tq * tk * (p.math_bytes if path == "math" else p.act)
    return probs * (1 if s.attention_dropout > 0 else 2)


def layer_parts(shape: Shape, s: StackSpec, t: int, paths: tuple[str, str], p: Precision) -> list[tuple[float, float]]:
    """(saved, backward transient) bytes of each sublayer of one layer, in forward order.

    ``paths`` are the attention paths for self- and cross-attention; cross-attention keys come
    from the encoder output (``shape.input_len`` tokens), which is counted once per model.
    Every transient also holds the residual stream's gradient (model width). An FFN's backward
    adds one FFN-wide gradient at a time (two when gated or when the activation is written in
    Python ops), the saved tensors it no longer needs being freed as it goes.
    """
    b, d = shape.batch_size, s.hidden_size
    tokens = b * t
    sub_in = tokens * d * p.act  # each sublayer's input, saved by its first linear(s)
    resid_drop = _dropout(tokens * d, s.hidden_dropout, p)
    stream = tokens * d * p.act
    head = _norm(tokens, s, p) + sub_in + resid_drop
    parts = [(head + _attention_core(b, t, t, s, paths[0], p), stream + _attention_transient(b, t, t, s, paths[0], p))]
    if s.cross_attention:
        tk = shape.input_len
        parts.append((head + _attention_core(b, t, tk, s, paths[1], p),
                      stream + _attention_transient(b, t, tk, s, paths[1], p)))
    n_ffn_grads = 2 if s.ffn_gated or _ACT_SAVED.get(s.activation, 1) > 1 else 1
    parts.append((head + _ffn(tokens, s, p), stream + n_ffn_grads * tokens * s.ffn_size * p.act))
    return parts


def layer_saved(shape: Shape, s: StackSpec, t: int, paths: tuple[str, str], p: Precision) -> float:
    """Bytes one layer of stack ``s`` saves for backward over ``t`` tokens per sequence."""
    return sum(saved for saved, _ in layer_parts(shape, s, t, paths, p))


def layer_backward_peak(shape: Shape, s: StackSpec, t: int, paths: tuple[str, str], p: Precision) -> float:
    """Peak bytes while one layer runs backward: its sublayers are undone last to first, each
    still holding the saved tensors of those before it, plus its own transient gradients."""
    parts = layer_parts(shape, s, t, paths, p)
    held = [sum(saved for saved, _ in parts[: i + 1]) for i in range(len(parts))]
    return max(h + transient for h, (_, transient) in zip(held, parts))


def _stack_ends(tokens: int, s: StackSpec, p: Precision) -> float:
    """Embedding and final-norm tensors outside the layers, plus the stack's output."""
    d = s.hidden_size
    saved = _dropout(tokens * d, s.hidden_dropout, p)  # embedding dropout
    if s.pre_norm:
        saved += _norm(tokens, s, p)  # final norm
        if s.final_dropout and s.hidden_dropout > 0:
            saved += _dropout(tokens * d, s.hidden_dropout, p)
    else:
        saved += _norm(tokens, s, p)  # embedding LayerNorm
    return saved + tokens * d * p.act  # the stack output, saved by the head or cross-attention


def _head(arch: ArchSpec, tokens: int, p: Precision) -> tuple[float, float]:
    """(saved, logits) bytes of the LM head and loss over ``tokens`` positions."""
    if arch.head == "none":
        return 0.0, 0.0
    d = (arch.decoder or arch.main).hidden_size
    saved = 3 * tokens * d * p.act + 2 * tokens * _STAT_BYTES if arch.head == "lm_transform" else 0.0
    upcast = arch.kind == "causal" and p.act < 4  # causal LM loss runs on logits.float()
    logits = tokens * arch.vocab_size * (p.act + (4 if upcast else 0))
    log_probs = tokens * arch.vocab_size * (4 if upcast else p.act)
    return saved + log_probs, logits


def _stacks(arch: ArchSpec, shape: Shape) -> list[tuple[str, StackSpec, int]]:
    """(name, stack, tokens per sequence) for each stack the batch runs through."""
    if arch.kind == "seq2seq":
        return [("encoder", arch.encoder, shape.input_len), ("decoder", arch.decoder, shape.output_len)]  # type: ignore[list-item]
    if arch.kind == "causal":
        return [("decoder", arch.decoder, shape.input_len + shape.output_len)]  # type: ignore[list-item]
    return [("encoder", arch.encoder, shape.input_len)]  # type: ignore[list-item]


def estimate_activations(
    arch: ArchSpec,
    shape: Shape,
    precision: Precision,
    attention: str = "auto",
    device: str = "cpu",
    grad_checkpointing: bool = False,
) -> ActivationEstimate:
    """Activation bytes of one training step of ``arch`` on a batch of ``shape``."""
    paths: dict[str, str] = {}
    per_layer: dict[str, int] = {}
    per_input: dict[str, int] = {}
    peaks: dict[str, int] = {}
    non_layer: dict[str, int] = {}
    b = shape.batch_size
    for name, s, t in _stacks(arch, shape):
        paths[f"{name}.self"] = attention_path(s, attention, device, True)
        if s.cross_attention:
            paths[f"{name}.cross"] = attention_path(s, attention, device, True, cross=True)
        pair = (paths[f"{name}.self"], paths.get(f"{name}.cross", "flash"))
        per_layer[name] = int(layer_saved(shape, s, t, pair, precision))
        peaks[name] = int(layer_backward_peak(shape, s, t, pair, precision))
        per_input[name] = int(b * t * s.hidden_size * precision.act)
        ends = _stack_ends(b * t, s, precision)
        if name == "encoder" and arch.kind == "encoder" and arch.head == "none":
            ends -= per_input[name]  # nothing downstream saves the output
        if s.position == "relative_bias" and grad_checkpointing:
            ends += s.n_heads * t * t * precision.act  # the bias tensor every checkpointed layer receives
        non_layer[name] = int(ends)
    head_tokens = b * (shape.output_len if arch.kind == "seq2seq" else shape.input_len + shape.output_len)
    head_saved, logits = _head(arch, head_tokens, precision)
    non_layer["head"] = int(head_saved)
    layers = {name: s.layers for name, s, _ in _stacks(arch, shape)}
    if grad_checkpointing:
        in_layers = sum(layers[n] * per_input[n] for n in layers) + max(per_layer.values())
    else:
        in_layers = sum(layers[n] * per_layer[n] for n in layers)
    notes = []
    if "math" in paths.values():
        notes.append("attention runs SDPA's math path here (dropout or a learned bias in training): "
                     "full T x T probability matrices are saved, as with eager attention")
    head_grad_logits = int(head_tokens * arch.vocab_size * precision.act) if arch.head != "none" else 0
    return ActivationEstimate(
        saved=int(in_layers + sum(non_layer.values())), logits=int(logits), per_layer=per_layer,
        layer_input=per_input, layer_peak=peaks, non_layer=non_layer, head_grad_logits=head_grad_logits,
        layers=layers, checkpointing=grad_checkpointing, attention_paths=paths, notes=tuple(notes),
    )


@dataclass(frozen=True)
class InferenceActivations:
    """Memory besides the weights when generating (bytes)."""

    kv_cache: int
    """Keys and values kept for every layer (self-attention over input + output, cross-attention over the input)."""
    working: int
    """The largest layer's temporaries during the prompt (prefill / encoder) pass."""
    outputs: int
    """Encoder output kept for the decoder, and the next-token logits."""

    @property
    def total(self) -> int:
        return self.kv_cache + self.working + self.outputs


def estimate_inference_activations(arch: ArchSpec, shape: Shape, precision: Precision,
                                   attention: str = "auto") -> InferenceActivations:
    """KV cache, one layer's temporaries and outputs when generating ``shape.output_len`` tokens."""
    b, a = shape.batch_size, precision.act
    kv = working = outputs = 0.0
    for name, s, t in _stacks(arch, shape):
        t_ctx = t if name == "encoder" else (shape.input_len + shape.output_len if arch.kind == "causal" else t)
        t_prompt = t if name == "encoder" else (shape.input_len if arch.kind == "causal" else 1)
        if name == "decoder":
            kv += 2 * s.layers * b * t_ctx * s.kv_inner * a
            if s.cross_attention:
                kv += 2 * s.layers * b * shape.input_len * s.inner * a
        path = attention_path(s, attention, "cpu", training=False)
        scores = 2 * b * s.n_heads * t_prompt * t_ctx if path != "flash" else 0
        ffn = (3 if s.ffn_gated else 2) * b * t_prompt * s.ffn_size
        working = max(working, (max(scores, ffn) + 3 * b * t_prompt * s.hidden_size) * a)
        if name == "encoder" and arch.kind == "seq2seq":
            outputs += b * t * s.hidden_size * a
    if arch.head != "none":
        outputs += b * arch.vocab_size * 4  # next-token logits, processed in fp32
    return InferenceActivations(kv_cache=int(kv), working=int(working), outputs=int(outputs))
