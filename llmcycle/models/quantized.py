"""Quantised models: PyTorch int8 dynamic quantisation, its own saved format, bitsandbytes loading.

A quantised model is a property of the model (``load_model`` reads the format back), so it lives
here; ``llmcycle.optimize`` builds and measures the variants.

* ``quantize_dynamic_int8(model)``: PyTorch's dynamic quantisation (``torch.ao.quantization.
  quantize_dynamic``): the weights of every ``nn.Linear`` stored as int8 with a per-tensor scale,
  activations quantised on the fly; large embedding tables quantised weight-only (int8 per row).
  CPU only (fbgemm/qnnpack kernels). ``torch.ao.quantization`` is deprecated in favour of
  ``torchao`` but still ships with PyTorch and needs nothing else.
* ``save_int8`` / ``load_int8``: a quantised model cannot go through ``save_pretrained``; it is saved
  as its config, tokenizer and a ``torch.save`` state dict beside a ``llmcycle_quantization.json``
  marker, which ``llmcycle.models.load_model`` recognises. Loading unpickles the state dict
  (``weights_only=False``): load only directories you (or llmcycle) wrote.
* ``load_bnb(source, bits)``: 8-bit or 4-bit (NF4) loading through bitsandbytes, CUDA only.
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from llmcycle.core.errors import OptimizeError
from llmcycle.models.build import auto_class, build_random

MARKER = "llmcycle_quantization.json"
WEIGHTS = "quantized_model.pt"
EMBEDDING_MIN_ROWS = 1000  # embedding tables this large are quantised; small ones (positions, types) stay fp32


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


def quantize_dynamic_int8(model: Any, inplace: bool = False) -> Any:
    """Dynamic int8 for linear layers, weight-only int8 for large embeddings; tied tables stay shared.

    Modules that shared one embedding table (T5's shared / encoder / decoder embeddings) are made
    to share the one quantised module afterwards. An output head tied to an embedding is a linear
    layer: it gets its own int8 copy.
    """
    import copy

    import torch
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        float_qparams_weight_only_qconfig,
        quantize_dynamic,
    )

    if any(p.device.type != "cpu" for p in model.parameters()):
        raise OptimizeError("int8 dynamic quantisation runs on CPU only; load the model with device='cpu' "
                            "(for GPU use bnb8 / bnb4)")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model = model.float() if inplace else copy.deepcopy(model).float()
        inplace = True
    groups = _embedding_groups(model)
    spec: dict[Any, Any] = {torch.nn.Linear: default_dynamic_qconfig}
    spec |= {name: float_qparams_weight_only_qconfig for name in groups}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        model = quantize_dynamic(model, spec, dtype=torch.qint8, inplace=inplace)
    for primary, others in groups.items():
        shared = model.get_submodule(primary)
        for name in others:
            model.set_submodule(name, shared)
    return model.eval()


def _quantized(module: Any) -> bool:
    return type(module).__module__.startswith("torch.ao.nn.quantized")


def count_params(model: Any) -> int:
    """Parameters, counting the int8 weights of quantised modules (which are not ``nn.Parameter``s)."""
    return sum(n for n, _ in _tensors(model))


def weight_bytes(model: Any) -> int:
    """Bytes the weights take in memory: int8 weights one byte each, every other tensor at its own dtype."""
    return sum(n * size for n, size in _tensors(model))


def _tensors(model: Any) -> list[tuple[int, int]]:
    """``(elements, bytes per element)`` of every weight of ``model`` once (tied weights once)."""
    seen: set[int] = set()
    out: list[tuple[int, int]] = []
    for module in model.modules():
        if _quantized(module):
            for name in ("weight", "bias"):
                t = getattr(module, name)() if callable(getattr(module, name, None)) else None
                if t is not None:
                    out.append((t.numel(), t.element_size()))
            continue
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                out.append((p.numel(), p.element_size()))
    return out


def is_int8(model: Any) -> bool:
    """Whether ``model`` holds PyTorch dynamically quantised modules."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


def _aliases(model: Any) -> dict[str, str]:
    """Names under which a module already seen under another name appears again: {alias: first name}."""
    first: dict[int, str] = {}
    out = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if id(module) in first and first[id(module)] != name:
            out[name] = first[id(module)]
        first.setdefault(id(module), name)
    return out


def save_int8(loaded: Any, path: str | Path) -> Path:
    """Write a quantised model so that ``load_model(path)`` restores it (config, tokenizer, state dict, marker).

    A module shared under several names (tied embeddings) is written once.
    """
    import torch

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = loaded.model
    model.config.save_pretrained(str(path))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(path))
    loaded.tokenizer.save_pretrained(str(path))
    aliases = _aliases(model)
    full = model.state_dict()
    state = OrderedDict((k, v) for k, v in full.items() if not any(k.startswith(f"{a}.") for a in aliases))
    state._metadata = full._metadata  # type: ignore[attr-defined]  # module versions: the quantised format
    torch.save(state, path / WEIGHTS)
    marker = {"method": "int8_dynamic", "torch": torch.__version__, "shared_modules": aliases}
    (path / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return path


def load_int8(path: str | Path, kind: str) -> Any:
    """The quantised model saved by ``save_int8`` in ``path`` (CPU)."""
    import torch
    from transformers import AutoConfig

    path = Path(path)
    marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
    if marker.get("method") != "int8_dynamic":
        raise OptimizeError(f"{path}/{MARKER}: unknown quantisation method {marker.get('method')!r}")
    config = AutoConfig.from_pretrained(path)
    model = quantize_dynamic_int8(build_random(config), inplace=True)
    try:
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=False)  # written by save_int8
        meta = getattr(state, "_metadata", None)
        for alias, primary in _aliases(model).items():  # shared modules were written once
            for k, v in list(state.items()):
                if k.startswith(f"{primary}."):
                    state[f"{alias}.{k[len(primary) + 1:]}"] = v
            if meta is not None:
                for k, v in list(meta.items()):
                    if k == primary or k.startswith(f"{primary}."):
                        meta[alias + k[len(primary):]] = v
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, KeyError) as exc:
        raise OptimizeError(f"{path}/{WEIGHTS}: cannot load the quantised weights (not written by this llmcycle "
                            f"for this config.json?): {str(exc).splitlines()[0]}") from None
    return model.eval()


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
