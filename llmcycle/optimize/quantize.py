"""Post-training quantisation of a loaded model: dtype casts and PyTorch int8 dynamic quantisation.

* ``cast(loaded, "fp16" | "bf16")``: every floating-point weight in the half-precision dtype.
* ``quantize_int8(loaded)``: a copy with int8 linear layers and embedding tables
  (``llmcycle.models.quantized.quantize_dynamic_int8``), CPU only.
* Saving and loading quantised models (int8's own format, bitsandbytes loading) is a property of a
  model: ``llmcycle.models.quantized``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llmcycle.core.errors import OptimizeError
from llmcycle.models.adapters import is_peft
from llmcycle.models.quantized import quantize_dynamic_int8


def cast(loaded: Any, dtype: str) -> Any:
    """A copy of ``loaded`` with its floating-point weights in ``fp16`` or ``bf16``."""
    import copy

    import torch

    target = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
    if target is None:
        raise OptimizeError(f"cast: dtype must be fp16 or bf16, got {dtype!r}")
    model = copy.deepcopy(loaded.model).to(target).eval()
    return replace(loaded, model=model, notes=[*loaded.notes, f"weights cast to {dtype}"])


def quantize_int8(loaded: Any) -> Any:
    """A copy of ``loaded`` with int8 linear layers (dynamic activations) and int8 embedding tables."""
    if is_peft(loaded.model):
        raise OptimizeError("int8: merge the LoRA adapter first (method merge, or llmcycle.models.adapters."
                            "merge_adapter); quantising a PEFT wrapper would leave the adapter in fp32")
    notes = [*loaded.notes, "int8 dynamic quantisation (linear + embeddings)"]
    if any(p.device.type != "cpu" for p in loaded.model.parameters()):
        # a CPU deployment format: quantise a CPU copy (measured on the CPU; on a GPU use bnb8 / bnb4)
        import copy

        model = quantize_dynamic_int8(copy.deepcopy(loaded.model).to("cpu"), inplace=True)
        notes.append("moved to the CPU (int8 dynamic kernels are CPU-only)")
    else:
        model = quantize_dynamic_int8(loaded.model, inplace=False)
    return replace(loaded, model=model, notes=notes)


