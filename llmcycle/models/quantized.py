"""Quantised models: int8 through torchao or PyTorch's dynamic kernels, saved as safetensors; bitsandbytes loading.

A quantised model is a property of the model (``load_model`` reads the format back), so it lives
here; ``llmcycle.optimize`` builds and measures the variants.

* ``quantize_dynamic_int8(model, backend=None)``: int8 weights for every ``nn.Linear`` (activations
  quantised on the fly) and for large embedding tables (weight-only, one scale per row), by one of
  two backends:

  - ``torchao`` (``torchao.quantization.quantize_`` with ``Int8DynamicActivationInt8WeightConfig``,
    per-row weight scales, per-token activation scales; embeddings ``IntxWeightOnlyConfig``): the
    maintained API, used on a GPU;
  - ``torch-dynamic`` (``torch.ao.quantization.quantize_dynamic``: fbgemm / qnnpack kernels,
    per-tensor weight scales; embeddings int8 per row): used on the CPU.

  ``int8_backend`` is the one place that chooses, and it keeps the older path for the CPU because
  only that path is faster there. On a 2-core AVX2 CPU (torch 2.13, torchao 0.18), greedy DialogSum
  summaries of the fine-tuned MiniLM encoder-decoder (100 dialogues, batch 8, 60 new tokens) came
  2.19x faster than fp32 with ``torch-dynamic`` and 9.3x *slower* with torchao in eager mode, both at
  0.32x the size and within 1 ROUGE-1 point (``benchmarks/results/optimize.json``: ``int8``, and
  ``int8_backends`` for each backend). torchao's CPU int8 matmul is not a fused kernel (it expects
  ``torch.compile``), and its int8 embedding tables are dequantised whole at every lookup. The
  torchao path on a GPU is not measured here (no GPU).
* ``save_int8`` / ``load_int8``: config, tokenizer and ``model.safetensors`` (plain int8 / float
  tensors; torchao's own flattening for its tensor subclasses) beside a ``llmcycle_quantization.json``
  marker that names the backend, which ``llmcycle.models.load_model`` recognises. Loading reads
  safetensors only: nothing is unpickled. The folders older llmcycle versions wrote (a pickled
  ``quantized_model.pt``) are refused with a one-line error saying to quantise again.
* ``load_bnb(source, bits)``: 8-bit or 4-bit (NF4) loading through bitsandbytes, CUDA only.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from llmcycle.core.errors import OptimizeError
from llmcycle.models.build import auto_class, build_random

MARKER = "llmcycle_quantization.json"
WEIGHTS = "model.safetensors"
OLD_WEIGHTS = "quantized_model.pt"  # written (pickled) by llmcycle before the safetensors format; refused
FORMAT = 2
BACKENDS = ("torchao", "torch-dynamic")
EMBEDDING_MIN_ROWS = 1000  # embedding tables this large are quantised; small ones (positions, types) stay fp32

# PyTorch 2.13 marks torch.ao.quantization and its quantized tensors deprecated (in favour of torchao,
# which is slower on the CPU: see above). These two messages, and only they, are silenced around the
# calls into that path; every other warning reaches the user.
_TORCH_DYNAMIC_DEPRECATIONS = (r".*torch\.ao\.quantization is deprecated.*",
                               r".*quantized tensor creation functions.*")


def int8_backend(device_type: str = "cpu") -> str:
    """The int8 backend for a model on ``device_type``: ``torch-dynamic`` on the CPU, ``torchao`` elsewhere.

    The one place that keeps the deprecated ``torch.ao.quantization`` path: on the CPU its fbgemm kernels
    make decoding faster than fp32, torchao's eager int8 matmul makes it slower (module docstring).
    """
    return "torch-dynamic" if device_type == "cpu" else "torchao"


@contextmanager
def _torch_dynamic_quiet() -> Iterator[None]:
    """The deprecation notices of ``torch.ao.quantization`` (``_TORCH_DYNAMIC_DEPRECATIONS``) silenced, no others."""
    with warnings.catch_warnings():
        for message in _TORCH_DYNAMIC_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message)
        yield


class _KnownImportNoise(logging.Filter):
    """Drops the log lines that importing torchao prints on a CPU-only torch, and nothing else.

    transformers imports torchao whenever it is installed (for its TorchAoConfig loader), so without
    this every command that builds a model would print them: torchao failing to load its CUDA-only
    kernels (``_C_*.so``), finding no triton (a GPU compiler), and torch 2.13 noting that torchao
    registers enums with pytree the old way. None of them concerns what llmcycle runs on a CPU.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "is an Enum subclass and is now natively supported by torch.compile" in msg:
            return False
        torch = sys.modules.get("torch")
        cpu_only = torch is not None and getattr(getattr(torch, "version", None), "cuda", None) is None
        if record.name == "torchao" and msg.startswith("Failed to load ") and "_C" in msg and ".so" in msg:
            return not cpu_only
        if record.name == "torchao.kernel.intmm" and "Detected no triton" in msg:
            return not cpu_only
        return True


for _name in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree"):  # a filter sees its own logger's records
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _KnownImportNoise) for f in _logger.filters):
        _logger.addFilter(_KnownImportNoise())


def _torchao() -> Any:
    """``torchao.quantization`` (``OptimizeError`` when torchao is not installed)."""
    if find_spec("torchao") is None:
        raise OptimizeError("int8 (torchao backend): the torchao package is not installed (pip install torchao)")
    import torchao.quantization

    return torchao.quantization


def _embedding_groups(model: Any) -> dict[str, list[str]]:
    """Large embedding tables by their first module name, with the other modules sharing the same weight."""
    import torch

    groups: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, torch.nn.Embedding) and module.num_embeddings >= EMBEDDING_MIN_ROWS:
            names = groups.setdefault(id(module.weight), [])
            if name not in names:
                names.append(name)
    return {names[0]: names[1:] for names in groups.values()}


def quantize_dynamic_int8(model: Any, inplace: bool = False, backend: str | None = None) -> Any:
    """Dynamic int8 for linear layers, weight-only int8 for large embeddings; tied tables stay shared.

    ``backend``: ``torchao`` or ``torch-dynamic`` (None: ``int8_backend`` of the model's device; the
    ``torch-dynamic`` kernels are CPU-only). Modules that shared one embedding table (T5's shared /
    encoder / decoder embeddings) share the one quantised table afterwards. An output head tied to an
    embedding is a linear layer: it gets its own int8 copy.
    """
    import copy

    import torch

    devices = {p.device.type for p in model.parameters()}
    backend = backend or int8_backend("cpu" if devices <= {"cpu"} else sorted(devices - {"cpu"})[0])
    if backend not in BACKENDS:
        raise OptimizeError(f"int8: unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "torch-dynamic" and devices - {"cpu"}:
        raise OptimizeError("int8 (torch-dynamic backend) runs on CPU only; load the model with device='cpu' "
                            "or use the torchao backend (for GPU also bnb8 / bnb4)")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model = model.float() if inplace else copy.deepcopy(model).float()
        inplace = True
    elif not inplace:
        model = copy.deepcopy(model)
    groups = _embedding_groups(model)
    if backend == "torchao":
        _quantize_torchao(model, groups)
    else:
        with _torch_dynamic_quiet():
            from torch.ao.quantization import (
                default_dynamic_qconfig,
                float_qparams_weight_only_qconfig,
                quantize_dynamic,
            )

            spec: dict[Any, Any] = {torch.nn.Linear: default_dynamic_qconfig}
            spec |= {name: float_qparams_weight_only_qconfig for name in groups}
            model = quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    for primary, others in groups.items():
        shared = model.get_submodule(primary)
        for name in others:
            model.set_submodule(name, shared)
    return model.eval()


def _quantize_torchao(model: Any, groups: dict[str, list[str]]) -> None:
    """torchao int8 in place: linear layers W8A8 dynamic (per-row / per-token), large embeddings int8 per row."""
    import torch

    tq = _torchao()
    from torchao.utils import TorchAOBaseTensor

    seen: set[int] = set()

    def once(module: Any, kinds: tuple[type, ...], fqn: str) -> bool:  # a shared module is quantised once
        if not isinstance(module, kinds) or isinstance(module.weight, TorchAOBaseTensor) or id(module) in seen:
            return False
        if isinstance(module, torch.nn.modules.linear.NonDynamicallyQuantizableLinear):
            return False
        seen.add(id(module))
        return True

    tables = {id(model.get_submodule(name)) for name in groups}  # the first module of each shared table
    # version=2: the tensor formats (IntxUnpackedToInt8Tensor, Int8Tensor) that torchao's safetensors helpers
    # know; set_inductor_config=False: quantising should not change torch.compile's global settings
    tq.quantize_(model, tq.IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=tq.PerAxis(0), version=2),
                 filter_fn=lambda m, fqn: id(m) in tables and once(m, (torch.nn.Embedding,), fqn))
    tq.quantize_(model, tq.Int8DynamicActivationInt8WeightConfig(set_inductor_config=False, version=2),
                 filter_fn=lambda m, fqn: once(m, (torch.nn.Linear,), fqn))


def _is_torch_dynamic(module: Any) -> bool:
    """A ``torch.ao`` quantised linear or embedding module (not their inner packed-parameter holders)."""
    return type(module).__module__.startswith("torch.ao.nn.quantized") and callable(getattr(module, "weight", None))


def _is_torchao_tensor(t: Any) -> bool:
    return any(c.__name__ == "TorchAOBaseTensor" for c in type(t).__mro__)


def is_int8(model: Any) -> bool:
    """Whether ``model`` holds int8-quantised weights (either backend)."""
    return backend_of(model) is not None


def backend_of(model: Any) -> str | None:
    """``torchao`` or ``torch-dynamic``: the backend ``model`` was quantised with (None: not int8)."""
    if any(_is_torch_dynamic(m) for m in model.modules()):
        return "torch-dynamic"
    if any(_is_torchao_tensor(p) for p in model.parameters()):
        return "torchao"
    return None


def count_params(model: Any) -> int:
    """Parameters, counting the int8 weights of quantised modules (which are not ``nn.Parameter``s)."""
    return sum(n for n, _ in _tensors(model))


def weight_bytes(model: Any) -> int:
    """Bytes the weights take in memory: int8 weights one byte each (plus their scales), the rest at their dtype."""
    return sum(b for _, b in _tensors(model))


def _subclass_bytes(t: Any) -> int:
    """Bytes of a tensor, a torchao tensor subclass counted by the tensors it holds (int8 data, scales)."""
    if hasattr(t, "__tensor_flatten__"):
        return sum(_subclass_bytes(getattr(t, name)) for name in t.__tensor_flatten__()[0]
                   if getattr(t, name, None) is not None)
    return t.numel() * t.element_size()


def _tensors(model: Any) -> list[tuple[int, int]]:
    """``(elements, bytes)`` of every weight of ``model`` once (tied weights once)."""
    seen: set[int] = set()
    out: list[tuple[int, int]] = []
    for module in model.modules():
        if _is_torch_dynamic(module):
            for name in ("weight", "bias"):
                t = getattr(module, name)() if callable(getattr(module, name, None)) else None
                if t is not None:
                    out.append((t.numel(), t.numel() * t.element_size()))
            continue
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                out.append((p.numel(), _subclass_bytes(p)))
    return out


def _plain_state(model: Any, aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """Every weight of ``model`` as a plain tensor (safetensors holds nothing else), each stored tensor once.

    ``torch-dynamic`` modules give ``<module>.weight`` (int8 / uint8 values) with its ``weight_scale`` and
    ``weight_zero_point`` (per tensor for linear layers, per row for embeddings) and ``bias``; torchao
    tensor subclasses stay whole here (``save_int8`` flattens them with torchao's own helper). A module or
    tensor reachable under several names (tied weights) is written under its first name only; ``aliases``,
    if given, receives ``{other name: first name}`` for the tensors left out.
    """
    import torch

    aliases = {} if aliases is None else aliases
    out: dict[str, Any] = {}
    quantized = {name for name, m in model.named_modules(remove_duplicate=False) if _is_torch_dynamic(m)}
    for name, module in model.named_modules():  # shared modules once, under their first name
        if not _is_torch_dynamic(module):
            continue
        prefix = f"{name}." if name else ""
        weight = module.weight()
        if weight.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
            scale = torch.tensor([weight.q_scale()], dtype=torch.float64)
            zero = torch.tensor([weight.q_zero_point()], dtype=torch.int64)
        else:
            scale, zero = weight.q_per_channel_scales(), weight.q_per_channel_zero_points()
        out |= {f"{prefix}weight": weight.int_repr(), f"{prefix}weight_scale": scale,
                f"{prefix}weight_zero_point": zero}
        bias = module.bias() if callable(getattr(module, "bias", None)) else None
        if bias is not None:
            out[f"{prefix}bias"] = bias.detach()
    seen = {_storage(t) for t in out.values()}
    for key, t in model.state_dict(keep_vars=True).items():
        if not isinstance(t, torch.Tensor) or any(key.startswith(f"{q}.") for q in quantized):
            continue
        if _storage(t) in seen:  # tied to a tensor already written (BERT's head bias is its decoder's bias)
            aliases[key] = next(k for k, v in out.items() if _storage(v) == _storage(t))
            continue
        seen.add(_storage(t))
        out[key] = t.detach()
    return out


def _storage(t: Any) -> tuple[Any, ...]:
    """What makes two tensors one stored tensor: the same memory, offset and shape (a torchao tensor: itself)."""
    if _is_torchao_tensor(t):
        return ("torchao", id(t))
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)


def save_int8(loaded: Any, path: str | Path) -> Path:
    """Write a quantised model so that ``load_model(path)`` restores it: config, tokenizer, ``model.safetensors``
    and the marker. A weight shared under several names (tied embeddings) is written once."""
    import torch
    from safetensors.torch import save_file

    model = loaded.model
    backend = backend_of(model)
    if backend is None:
        raise OptimizeError("save_int8: the model holds no int8 weights (quantise it with quantize_int8 first)")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(path))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(path))
    loaded.tokenizer.save_pretrained(str(path))
    state = {k: v.to("cpu") for k, v in _plain_state(model).items()}
    metadata = {"format": "llmcycle-int8", "backend": backend}
    if backend == "torchao":
        from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

        state, ao_meta = flatten_tensor_state_dict(state)
        metadata |= ao_meta
    save_file({k: v.contiguous() for k, v in state.items()}, str(path / WEIGHTS), metadata=metadata)
    marker = {"format": FORMAT, "method": "int8", "backend": backend, "weights": WEIGHTS, "torch": torch.__version__}
    if backend == "torchao":
        from importlib.metadata import version

        marker["torchao"] = version("torchao")
    (path / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return path


def saved_backend(path: str | Path) -> str:
    """The backend of the int8 model saved in folder ``path`` (``OptimizeError`` for an old or foreign marker)."""
    path = Path(path)
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OptimizeError(f"{path}/{MARKER} cannot be read: {str(exc).splitlines()[0]}") from None
    if not isinstance(marker, dict):
        raise OptimizeError(f"{path}/{MARKER} is not a JSON object; quantise the original model again")
    if marker.get("method") == "int8_dynamic":
        raise OptimizeError(f"{path} holds int8 weights in the pickled format of older llmcycle versions "
                            f"({OLD_WEIGHTS}), which is no longer loaded; quantise the original model again "
                            "(method int8)")
    if marker.get("method") != "int8" or marker.get("backend") not in BACKENDS:
        raise OptimizeError(f"{path}/{MARKER}: unknown quantisation {marker.get('method')!r} / backend "
                            f"{marker.get('backend')!r}; valid backends: {', '.join(BACKENDS)}")
    return str(marker["backend"])


def load_int8(path: str | Path, kind: str | None = None) -> Any:
    """The quantised model saved by ``save_int8`` in ``path`` (CPU), read from safetensors (no pickle).

    The architecture is built from ``config.json``, quantised the same way, and every saved tensor is
    copied in; a tensor missing, left over or of another shape is an ``OptimizeError`` naming it.
    """
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig

    path = Path(path)
    backend = saved_backend(path)
    if not (path / WEIGHTS).is_file():
        raise OptimizeError(f"{path}/{WEIGHTS} is missing: the int8 weights were not saved with this folder")
    config_dict = json.loads((path / "config.json").read_text(encoding="utf-8"))
    model = quantize_dynamic_int8(build_random(AutoConfig.from_pretrained(path), config_dict), inplace=True,
                                  backend=backend)
    try:
        with safe_open(str(path / WEIGHTS), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own (Rust) error type
        raise OptimizeError(f"{path}/{WEIGHTS}: cannot read the int8 weights: {str(exc).splitlines()[0]}") from None
    if backend == "torchao":
        from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

        try:
            state, leftover = unflatten_tensor_state_dict(state, metadata)
        except (ValueError, KeyError, TypeError) as exc:
            raise OptimizeError(f"{path}/{WEIGHTS}: not torchao int8 weights written by save_int8: "
                                f"{str(exc).splitlines()[0]}") from None
        if leftover:
            raise OptimizeError(f"{path}/{WEIGHTS}: unexpected tensors {sorted(leftover)[:3]}")
    aliases: dict[str, str] = {}
    target = _plain_state(model, aliases)
    missing, extra = sorted(set(target) - set(state)), sorted(set(state) - set(target))
    if missing or extra:
        raise OptimizeError(f"{path}/{WEIGHTS} does not fit its config.json ({backend} int8): "
                            + "; ".join(f"{what} {keys[:3]}" for what, keys in (("missing", missing),
                                                                               ("unexpected", extra)) if keys))
    for key, dest in target.items():
        if tuple(state[key].shape) != tuple(dest.shape):
            raise OptimizeError(f"{path}/{WEIGHTS}: {key} has shape {tuple(state[key].shape)}; the model built "
                                f"from config.json needs {tuple(dest.shape)}")
    live = model.state_dict(keep_vars=True)  # the model's own tensors (tied ones under every name)
    with torch.no_grad():
        for key in target:
            if _is_torchao_tensor(state[key]):  # its metadata went through JSON (lists for tuples): set it whole
                owner, _, attr = key.rpartition(".")
                setattr(model.get_submodule(owner), attr, torch.nn.Parameter(state[key], requires_grad=False))
            elif _quantized_owner(model, key) is None:
                live[key].copy_(state[key])
        _load_torch_dynamic(model, state)
        for key, first in aliases.items():  # a tie that setting an int8 module's weights undid gets its values
            if isinstance(live.get(key), torch.Tensor) and not _is_torchao_tensor(live[key]):
                live[key].copy_(state[first])
    return model.eval()


def _quantized_owner(model: Any, key: str) -> Any:
    """The ``torch-dynamic`` module that ``key`` (``<module>.weight`` and its scales) belongs to, else None."""
    name = key.rsplit(".", 1)[0] if "." in key else ""
    try:
        module = model.get_submodule(name)
    except AttributeError:
        return None
    return module if _is_torch_dynamic(module) else None


def _load_torch_dynamic(model: Any, state: dict[str, Any]) -> None:
    """Set the int8 weights of every ``torch-dynamic`` module of ``model`` from the plain tensors in ``state``."""
    import torch

    with _torch_dynamic_quiet():
        for name, module in model.named_modules():
            if not _is_torch_dynamic(module):
                continue
            prefix = f"{name}." if name else ""
            values, scale, zero = (state[f"{prefix}{k}"] for k in ("weight", "weight_scale", "weight_zero_point"))
            if module.weight().qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                weight = torch._make_per_tensor_quantized_tensor(values, float(scale), int(zero))
            else:
                weight = torch._make_per_channel_quantized_tensor(values, scale, zero, 0)
            if hasattr(module, "set_weight_bias"):
                module.set_weight_bias(weight, state.get(f"{prefix}bias"))
            else:
                module.set_weight(weight)


def check_bnb(bits: int) -> None:
    """``OptimizeError`` when bitsandbytes ``bits``-bit loading cannot work here (no CUDA GPU, no package)."""
    import torch

    if bits not in (4, 8):
        raise OptimizeError(f"bnb: bits must be 4 or 8, got {bits}")
    if not torch.cuda.is_available():
        raise OptimizeError(f"bnb{bits}: bitsandbytes quantisation needs a CUDA GPU and none is visible; on CPU "
                            "use method int8")
    if find_spec("bitsandbytes") is None:
        raise OptimizeError(f"bnb{bits}: the bitsandbytes package is not installed (pip install bitsandbytes)")


def load_bnb(source: str, bits: int, kind: str) -> Any:
    """``source`` loaded with bitsandbytes 8-bit or 4-bit (NF4, bf16 compute) weights on the GPU."""
    import torch

    check_bnb(bits)
    from transformers import BitsAndBytesConfig


    if bits == 8:
        qcfg = BitsAndBytesConfig(load_in_8bit=True)
    else:
        qcfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    return auto_class(kind).from_pretrained(source, quantization_config=qcfg, device_map={"": 0}).eval()
