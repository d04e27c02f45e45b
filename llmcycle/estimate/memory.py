"""How much memory a model needs to run or train: ``estimate_memory``.

Two levels of detail:

- **Rule of thumb** (only a parameter count, or no batch shape): the course figures. Weights take
  4 bytes/param in fp32, 2 in fp16/bf16, 1 in int8, 0.5 in int4. Full fine-tuning in fp32 with
  Adam adds gradients (4), Adam's two moments (8) and activations/temporaries (~8, the rule of
  thumb: twice the weights) = 24 bytes/param, ~6x the weights. ZeRO figures follow the ZeRO
  paper (mixed-precision Adam: 2 + 2 + 12 bytes/param of model states).
- **From the architecture** (an ``ArchSpec`` and a batch shape): activations are counted tensor by
  tensor (``llmcycle.estimate.activations``), and the peak follows one training step: the backward
  pass frees each layer's activations while it creates that layer's gradients, so the two are
  not all alive at once; the optimiser step then needs weights, gradients, states and its own
  temporaries. The breakdown lists every term and a (negative) "not alive together" line, so the
  rows add up to the peak.

Per-GPU figures under data parallelism: ZeRO-1 shards optimiser states (with the fp32 master
copy), ZeRO-2 also gradients, ZeRO-3/FSDP also weights; activations are never sharded (they
follow the per-GPU micro-batch). Decimal units: 1 GB = 1e9 bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llmcycle.core.errors import LLMCycleError
from llmcycle.estimate import _checks
from llmcycle.estimate.activations import (
    ATTENTION_IMPLS,
    DEVICES,
    ActivationEstimate,
    Precision,
    Shape,
    estimate_activations,
    estimate_inference_activations,
)
from llmcycle.estimate.arch import ArchSpec

GB = 1e9
DTYPE_BYTES: dict[str, float] = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}
# optimiser -> (states per trainable parameter, bytes per state element or None for "fp32/param dtype")
OPTIMIZERS: dict[str, tuple[int, float | None]] = {
    "adam": (2, None), "adamw": (2, None), "adamw_fused": (2, None), "adam_8bit": (2, 1.0), "sgd": (0, None),
    "sgd_momentum": (1, None),
}
PARALLELISMS = ("none", "ddp", "zero1", "zero2", "zero3", "fsdp")
MODES = ("training", "inference")
RULE_OF_THUMB_ACTIVATIONS = 2.0
"""Activations and temporaries when no batch shape is given: ~2x the weight bytes (8 bytes/param
in fp32, the course's rule of thumb for a typical fine-tuning batch)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Itemised memory of one device (bytes); ``rows()`` renders the table."""

    weights: int
    master_weights: int
    gradients: int
    optimizer_states: int
    activations: int
    overhead: int
    not_together: int = 0
    """<= 0: memory counted above that is never alive at the same moment (see module docs)."""
    activation_method: str = "none"
    """'architecture' (counted from the layers), 'rule_of_thumb' or 'none'."""
    settings: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    activation_detail: ActivationEstimate | None = None

    @property
    def model_states(self) -> int:
        """Weights, master weights, gradients and optimiser states (what ZeRO shards)."""
        return self.weights + self.master_weights + self.gradients + self.optimizer_states

    @property
    def total(self) -> int:
        """Peak bytes on one device: every row added up."""
        return self.model_states + self.activations + self.overhead + self.not_together

    @property
    def total_gb(self) -> float:
        return self.total / GB

    def rows(self) -> list[tuple[str, int, str, str]]:
        """(item, bytes, 'x.xx GB', note) rows, ending with the total; zero rows are left out."""
        act_note = {
            "rule_of_thumb": "rule of thumb: ~2x the weights (8 bytes/param in fp32); give a batch shape to count them",
            "architecture": "counted from the architecture for the batch shape",
            "none": "",
        }[self.activation_method]
        items = [
            ("weights", self.weights, ""),
            ("master weights (fp32)", self.master_weights, "mixed precision keeps an fp32 copy to update"),
            ("gradients", self.gradients, "trainable parameters only"),
            ("optimizer states", self.optimizer_states, "trainable parameters only"),
            ("activations", self.activations, act_note),
            ("overhead", self.overhead, "transient: backward temporaries / optimizer-step buffers"),
            ("not alive together", self.not_together, "activations are freed as gradients are made"),
        ]
        rows = [(name, b, f"{b / GB:.2f} GB", note) for name, b, note in items if b != 0]
        rows.append(("total", self.total, f"{self.total / GB:.2f} GB", "per device" if self._sharded else ""))
        return rows

    @property
    def _sharded(self) -> bool:
        return self.settings.get("n_gpus", 1) > 1

    def to_dict(self) -> dict[str, Any]:
        """Plain data: every item in bytes, the total in bytes and GB, settings and notes."""
        out: dict[str, Any] = {
            "weights": self.weights, "master_weights": self.master_weights, "gradients": self.gradients,
            "optimizer_states": self.optimizer_states, "activations": self.activations, "overhead": self.overhead,
            "not_together": self.not_together, "total": self.total, "total_gb": self.total_gb,
            "model_states": self.model_states, "activation_method": self.activation_method,
            "settings": dict(self.settings), "notes": list(self.notes),
        }
        if self.activation_detail is not None:
            out["activation_detail"] = asdict(self.activation_detail)
        return out


@dataclass(frozen=True)
class _Plan:
    """Validated settings, bytes per element of each kind of state."""

    n_params: int
    n_trainable: int
    weight_bytes: float
    grad_bytes: float
    master_bytes: float
    state_bytes: float
    compute_bytes: float
    training: bool
    shard_states: bool
    shard_grads: bool
    shard_weights: bool
    n_gpus: int
    device: str


def _resolve_params(model: Any) -> tuple[int, ArchSpec | None]:
    if isinstance(model, ArchSpec):
        return model.n_params, model
    _checks.positive("n_params", model)
    if float(model) != int(model):
        raise LLMCycleError(f"n_params: must be a whole number, got {model!r}")
    return int(model), None


def _resolve_trainable(n_params: int, arch: ArchSpec | None, fraction: float | None, count: float | None) -> int:
    if fraction is not None and count is not None:
        raise LLMCycleError("trainable_fraction: give trainable_fraction or trainable_params, not both")
    if fraction is not None:
        _checks.positive("trainable_fraction", fraction)
        if fraction > 1:
            raise LLMCycleError(f"trainable_fraction: must be in (0, 1], got {fraction!r}")
        return max(1, round(n_params * fraction))
    if count is not None:
        _checks.positive("trainable_params", count, integer=True, allow_zero=True)
        return int(count)
    return arch.n_trainable if arch is not None else n_params


def _plan(n_params: int, n_trainable: int, dtype: str, mode: str, optimizer: str, mixed_precision: bool,
          parallelism: str, n_gpus: int, device: str) -> _Plan:
    """Bytes per parameter of each kind, after checking the combination makes sense."""
    _checks.choice("dtype", dtype, DTYPE_BYTES)
    _checks.choice("mode", mode, MODES)
    _checks.choice("optimizer", optimizer, OPTIMIZERS)
    _checks.choice("parallelism", parallelism, PARALLELISMS)
    _checks.choice("device", device, (*DEVICES, "auto"))
    _checks.positive("n_gpus", n_gpus, integer=True)
    if n_trainable > n_params:
        raise LLMCycleError(f"trainable_params: {n_trainable:,} is more than the model's {n_params:,} parameters")
    if parallelism == "none" and n_gpus > 1:
        raise LLMCycleError(f"parallelism: 'none' runs on one device; n_gpus={n_gpus} needs ddp, zero1-3 or fsdp")
    if mixed_precision and dtype not in ("fp16", "bf16"):
        raise LLMCycleError(f"mixed_precision: needs dtype fp16 or bf16 (the half-precision working copy), got {dtype!r}")
    training = mode == "training"
    quantised = dtype in ("int8", "int4")
    if training and quantised and n_trainable >= n_params:
        raise LLMCycleError(f"dtype: {dtype} weights are frozen in training; pass trainable_params or "
                            "trainable_fraction for the adapters (e.g. QLoRA)")
    half = dtype in ("fp16", "bf16")
    grad_bytes = 2.0 if half else 4.0  # quantised bases train fp32 adapters
    n_states, state_elem = OPTIMIZERS[optimizer]
    state_bytes = n_states * (state_elem or (2.0 if half and not mixed_precision else 4.0))
    stage = {"zero1": 1, "zero2": 2, "zero3": 3, "fsdp": 3}.get(parallelism, 0)
    if device == "auto":
        device = "cuda" if parallelism != "none" else "cpu"
    return _Plan(
        n_params=n_params, n_trainable=n_trainable if training else 0, weight_bytes=DTYPE_BYTES[dtype],
        grad_bytes=grad_bytes, master_bytes=4.0 if mixed_precision else 0.0, state_bytes=state_bytes,
        compute_bytes=2.0 if (half or quantised) else 4.0, training=training, shard_states=stage >= 1,
        shard_grads=stage >= 2, shard_weights=stage >= 3, n_gpus=int(n_gpus), device=device,
    )


def _model_states(plan: _Plan) -> tuple[int, int, int, int]:
    """(weights, master weights, gradients, optimizer states) per device."""
    n = plan.n_gpus

    def share(total: float, sharded: bool) -> int:
        return int(round(total / n if sharded else total))

    weights = share(plan.n_params * plan.weight_bytes, plan.shard_weights)
    if not plan.training:
        return weights, 0, 0, 0
    master = share(plan.n_trainable * plan.master_bytes, plan.shard_states)
    grads = share(plan.n_trainable * plan.grad_bytes, plan.shard_grads)
    states = share(plan.n_trainable * plan.state_bytes, plan.shard_states)
    return weights, master, grads, states


def _check_shape(arch: ArchSpec | None, batch_size: Any, input_len: Any, output_len: Any) -> Shape | None:
    """The batch shape, or None when no batch size was given (rule-of-thumb activations)."""
    if batch_size is None:
        if input_len is not None or output_len is not None:
            raise LLMCycleError("batch_size: give batch_size together with input_len/output_len")
        return None
    _checks.positive("batch_size", batch_size, integer=True)
    if input_len is None:
        raise LLMCycleError("input_len: needed with batch_size (tokens per input sequence)")
    _checks.positive("input_len", input_len, integer=True)
    _checks.positive("output_len", output_len or 0, integer=True, allow_zero=True)
    if arch is None:
        raise LLMCycleError("batch_size: activations for a batch are counted from the architecture; pass an "
                            "ArchSpec (ArchSpec.from_config(config)) instead of a parameter count")
    if arch.kind == "seq2seq" and not output_len:
        raise LLMCycleError("output_len: a seq2seq model needs the target length (decoder tokens)")
    if arch.max_positions and arch.kind != "seq2seq" and input_len + (output_len or 0) > arch.max_positions:
        raise LLMCycleError(f"input_len: {input_len + (output_len or 0)} tokens exceed the model's "
                            f"{arch.max_positions} positions")
    return Shape(int(batch_size), int(input_len), int(output_len or 0))


def _step_temporaries(arch: ArchSpec | None, plan: _Plan, optimizer: str) -> int:
    """Buffers the optimiser step allocates besides its states.

    Adam's update divides by sqrt(v) + eps, a temporary the size of the tensor being updated: on
    CPU torch updates one tensor at a time (two such temporaries of the largest one); on CUDA
    the foreach path builds it for every tensor of the group at once. The fused kernel (the
    HF Trainer's default optimizer) and 8-bit Adam update in place.
    """
    if not plan.training or optimizer not in ("adam", "adamw") or plan.n_trainable == 0:
        return 0
    elem = 4.0 if plan.master_bytes or plan.grad_bytes == 4 else 2.0
    if plan.device == "cuda":
        per_device = plan.n_trainable / (plan.n_gpus if plan.shard_states else 1)
        return int(per_device * elem)
    largest = arch.largest_param if arch is not None and arch.largest_param else plan.n_trainable
    return int(2 * min(largest, plan.n_trainable) * elem)


def _training_peak(arch: ArchSpec, act: ActivationEstimate, plan: _Plan, step_temp: int) -> tuple[int, int]:
    """(peak bytes above the resident weights and optimiser states, transient part of it).

    One step, gradients set to None between steps (``zero_grad()``'s default). The forward pass
    ends with every saved tensor plus the logits; the logits go once the loss is computed.
    Backward then runs the head (two logits-sized gradients), then each layer, last to first:
    a layer's backward holds its saved tensors (recomputed under checkpointing) and its
    temporary gradients while the parameter gradients of everything already done exist; its
    activations are freed when it is done. The optimiser step comes last, with all gradients.
    """
    shard = plan.n_gpus if plan.shard_grads else 1
    grad_per_param = plan.grad_bytes * plan.n_trainable / plan.n_params / shard
    alive = float(act.saved - (max(act.per_layer.values(), default=0) if act.checkpointing else 0))
    best, best_transient = alive + act.logits, 0.0  # end of the forward pass (no layer recomputed yet)
    head_grads = (arch.lm_head_params if arch.head != "none" else 0) * grad_per_param
    transient = max(2 * act.head_grad_logits, act.head_grad_logits + head_grads)
    if alive + transient > best:
        best, best_transient = alive + transient, transient
    grads = head_grads
    alive -= act.non_layer.get("head", 0)
    for name, stack in (("decoder", arch.decoder), ("encoder", arch.encoder)):
        if stack is None or name not in act.per_layer:
            continue
        held = act.held(name)
        extra = act.layer_peak[name] - (0 if act.checkpointing else held)  # beyond what ``alive`` has
        for _ in range(stack.layers):
            at = alive + grads + extra
            if at > best:
                best, best_transient = at, act.layer_peak[name] - act.per_layer[name]
            grads += stack.layer_params() * grad_per_param
            alive -= held
        alive -= act.non_layer.get(name, 0)
    all_grads = plan.n_trainable * plan.grad_bytes / shard
    if all_grads + step_temp >= best:
        return int(all_grads + step_temp), step_temp
    return int(best), int(best_transient)


def _rule_of_thumb(plan: _Plan) -> int:
    """Activations and temporaries without a batch shape: ~2x the weights at the compute dtype."""
    return int(plan.n_params * plan.compute_bytes * RULE_OF_THUMB_ACTIVATIONS) if plan.training else 0


def estimate_memory(
    model: ArchSpec | int | float,
    *,
    dtype: str = "fp32",
    mode: str = "training",
    optimizer: str = "adam",
    mixed_precision: bool = False,
    trainable_fraction: float | None = None,
    trainable_params: int | None = None,
    batch_size: int | None = None,
    input_len: int | None = None,
    output_len: int | None = None,
    grad_checkpointing: bool = False,
    parallelism: str = "none",
    n_gpus: int = 1,
    device: str = "auto",
    attention: str = "auto",
) -> MemoryEstimate:
    """Memory to run (``mode="inference"``) or train one model, per device.

    Args:
        model: a parameter count (rule-of-thumb activations) or an ``ArchSpec`` (activations
            counted layer by layer when a batch shape is given).
        dtype: weights' dtype: fp32, fp16, bf16, int8 or int4 (quantised weights train only
            adapters: give trainable_params or trainable_fraction).
        mode: 'training' or 'inference'.
        optimizer: adam / adamw (two states in fp32, or in the weights' dtype for pure fp16/bf16
            training; torch's default implementation with its step buffers), adamw_fused (no
            step buffers: the HF Trainer default), adam_8bit (1 byte/state), sgd (no state),
            sgd_momentum (one state).
        mixed_precision: fp16/bf16 weights and gradients with an fp32 master copy and fp32 states.
        trainable_fraction / trainable_params: the part that gets gradients and optimiser state
            (LoRA, frozen layers); the rest costs weights (and activations) only.
        batch_size, input_len, output_len: the per-device micro-batch; seq2seq models read
            input_len into the encoder and output_len into the decoder, causal models a sequence
            of input_len + output_len tokens. Without them activations follow the rule of thumb.
        grad_checkpointing: keep only each layer's input and recompute the layer in backward.
        parallelism: none, ddp, zero1, zero2, zero3 or fsdp (= ZeRO-3) across ``n_gpus``.
        device: 'cpu', 'cuda' or 'auto' (cuda when a parallelism is set, else cpu); decides the
            attention kernel, dropout-mask size and the optimiser step's buffers.
        attention: 'auto' (what transformers picks: sdpa), 'eager', 'sdpa' or 'flash'.
    """
    n_params, arch = _resolve_params(model)
    n_trainable = _resolve_trainable(n_params, arch, trainable_fraction, trainable_params)
    plan = _plan(n_params, n_trainable, dtype, mode, optimizer, mixed_precision, parallelism, n_gpus, device)
    _checks.choice("attention", attention, ATTENTION_IMPLS)
    shape = _check_shape(arch, batch_size, input_len, output_len)
    weights, master, grads, states = _model_states(plan)
    settings = dict(n_params=n_params, trainable_params=plan.n_trainable, dtype=dtype, mode=mode, optimizer=optimizer,
                    mixed_precision=mixed_precision, batch_size=batch_size, input_len=input_len, output_len=output_len,
                    grad_checkpointing=grad_checkpointing, parallelism=parallelism, n_gpus=plan.n_gpus,
                    device=plan.device, attention=attention)
    base = dict(weights=weights, master_weights=master, gradients=grads, optimizer_states=states, settings=settings)
    if shape is None:
        return _estimate_rule_of_thumb(plan, base)
    assert arch is not None
    precision = Precision.for_device(plan.compute_bytes, plan.device)
    if not plan.training:
        inf = estimate_inference_activations(arch, shape, precision, attention)
        return MemoryEstimate(**base, activations=inf.total, overhead=0, activation_method="architecture",
                              notes=(f"activations = KV cache {inf.kv_cache / GB:.2f} GB + one layer's working set "
                                     f"{inf.working / GB:.2f} GB + outputs {inf.outputs / GB:.2f} GB",))
    return _estimate_training(arch, plan, shape, precision, attention, grad_checkpointing, optimizer, base)


def _estimate_rule_of_thumb(plan: _Plan, base: dict[str, Any]) -> MemoryEstimate:
    activations = _rule_of_thumb(plan)
    notes = []
    if plan.training:
        notes.append("activations use the rule of thumb (~2x the weights, 8 bytes/param in fp32); "
                     "pass an ArchSpec and a batch shape to count them")
        if plan.n_gpus > 1:
            states = _model_states(plan)
            notes.append(f"model states (what {'ZeRO' if plan.shard_states else 'DDP'} keeps per GPU): "
                         f"{sum(states) / GB:.2f} GB; activations are per device and never sharded")
    else:
        notes.append("weights only: add a batch shape (and an ArchSpec) for the KV cache and activations")
    method = "rule_of_thumb" if plan.training else "none"
    return MemoryEstimate(**base, activations=activations, overhead=0, activation_method=method, notes=tuple(notes))


def _estimate_training(arch: ArchSpec, plan: _Plan, shape: Shape, precision: Precision, attention: str,
                       grad_checkpointing: bool, optimizer: str, base: dict[str, Any]) -> MemoryEstimate:
    act = estimate_activations(arch, shape, precision, attention, plan.device, grad_checkpointing)
    above, transient = _training_peak(arch, act, plan, _step_temporaries(arch, plan, optimizer))
    if plan.shard_weights:  # ZeRO-3 / FSDP gather one layer's weights (and prefetch the next)
        gathered = int(2 * max(s.layer_params() for s in (arch.encoder, arch.decoder) if s) * plan.weight_bytes)
        above, transient = above + gathered, transient + gathered
    resident = base["weights"] + base["master_weights"] + base["optimizer_states"]
    listed = resident + base["gradients"] + act.total + transient
    notes = list(act.notes)
    if plan.n_trainable < plan.n_params:
        notes.append("frozen parameters still pass gradients through their layers: activations as in full training")
    notes.extend(_device_notes(plan))
    return MemoryEstimate(
        **base, activations=act.total, overhead=int(transient), not_together=int(resident + above - listed),
        activation_method="architecture", notes=tuple(notes), activation_detail=act,
    )


def _device_notes(plan: _Plan) -> list[str]:
    if plan.device == "cpu":
        return ["counts live tensors; peak RSS on CPU runs higher, as glibc keeps freed heap memory resident "
                "(measured +17% to +28%, +86% with gradient checkpointing on a 49M model: "
                "benchmarks/results/estimate_memory.json), plus ~0.25 GB for torch and transformers themselves"]
    return ["excludes the CUDA context and kernels (~0.5-1 GB per GPU) and allocator fragmentation"]
