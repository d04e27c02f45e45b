"""Post-training quantisation of a loaded model: dtype casts and int8 dynamic quantisation.

* ``cast(loaded, "fp16" | "bf16")``: every floating-point weight in the half-precision dtype.
* ``quantize_int8(loaded, backend=None)``: a copy with int8 linear layers and embedding tables
  (``llmcycle.models.quantized.quantize_dynamic_int8``): PyTorch's dynamic kernels on the CPU,
  torchao elsewhere (``llmcycle.models.quantized.int8_backend`` says why).
* Saving and loading quantised models (int8 as safetensors, bitsandbytes loading) is a property of a
  model: ``llmcycle.models.quantized``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llmcycle.core.errors import OptimizeError
from llmcycle.models.adapters import is_peft
from llmcycle.models.quantized import int8_backend, quantize_dynamic_int8


def cast(loaded: Any, dtype: str) -> Any:
    """A copy of ``loaded`` with its floating-point weights in ``fp16`` or ``bf16``."""
    import copy

    import torch

    target = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
    if target is None:
        raise OptimizeError(f"cast: dtype must be fp16 or bf16, got {dtype!r}")
    model = copy.deepcopy(loaded.model).to(target).eval()
    return replace(loaded, model=model, notes=[*loaded.notes, f"weights cast to {dtype}"])


def quantize_int8(loaded: Any, backend: str | None = None) -> Any:
    """A copy of ``loaded`` with int8 linear layers (dynamic activations) and int8 embedding tables.

    ``backend``: ``torchao`` or ``torch-dynamic`` (None: ``int8_backend`` of the model's device). The
    ``torch-dynamic`` kernels are CPU-only: a model on a GPU is quantised as a CPU copy.
    """
    if is_peft(loaded.model):
        raise OptimizeError("int8: merge the LoRA adapter first (method merge, or llmcycle.models.adapters."
                            "merge_adapter); quantising a PEFT wrapper would leave the adapter in fp32")
    device = next(loaded.model.parameters()).device.type
    backend = backend or int8_backend(device)
    notes = [*loaded.notes, f"int8 dynamic quantisation (linear + embeddings; {backend})"]
    if backend == "torch-dynamic" and device != "cpu":
        # a CPU deployment format: quantise a CPU copy (measured on the CPU)
        import copy

        model = quantize_dynamic_int8(copy.deepcopy(loaded.model).to("cpu"), inplace=True, backend=backend)
        notes.append("moved to the CPU (int8 torch-dynamic kernels are CPU-only)")
    else:
        model = quantize_dynamic_int8(loaded.model, inplace=False, backend=backend)
    return replace(loaded, model=model, notes=notes)
