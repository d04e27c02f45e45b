"""Estimated training memory of a stage, for ``llmcycle plan``: no weights are loaded.

The architecture comes from the model's config (bundled hub configs work offline; a builtin's is
built from its config alone); ``llmcycle.estimate.estimate_memory`` counts weights, gradients,
optimiser states and activations for the stage's batch shape. The figure is set against this
machine's RAM (or the first GPU's memory when the recipe runs on CUDA).
"""

from __future__ import annotations

import os
from typing import Any

from llmcycle.core.config import ModelConfig
from llmcycle.core.errors import LLMCycleError
from llmcycle.estimate import estimate_memory
from llmcycle.models.info import arch_spec

# The share of parameters a method trains, where it is not all of them: LoRA on attention projections is
# typically 0.5-2% (1.41% for FLAN-T5-base r=32 q,v), prompt tuning well under 0.1%.
TRAINABLE_SHARE = {"lora": 0.02, "qlora": 0.02, "prompt_tuning": 0.001}


def machine_memory(device: str) -> tuple[float, str]:
    """(bytes, what) of the memory a run on ``device`` has: system RAM, or the GPU's memory."""
    if device in ("cuda", "auto"):
        try:
            import torch

            if torch.cuda.is_available():
                return float(torch.cuda.get_device_properties(0).total_memory), "GPU memory"
        except ImportError:
            pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "RAM"


def training_memory_note(model: ModelConfig, method: str, batch_size: int, input_tokens: int, output_tokens: int,
                         precision: str = "fp32", lora_r: int | None = None, copies: int = 1) -> str:
    """``est. peak 2.7 GB of 24 GB RAM (11%)``: the estimate for training ``model`` this way, or why there is none.

    ``copies``: further frozen copies of the weights held beside the trained one (PPO's reference).
    """
    try:
        spec: Any = arch_spec(model.source, weights_free=True)
    except (LLMCycleError, OSError, ValueError) as exc:
        return f"memory: not estimated ({str(exc).splitlines()[0][:120]})"
    share = TRAINABLE_SHARE.get(method)
    have, what = machine_memory(model.device)
    try:
        est = estimate_memory(spec, dtype=precision if precision != "fp32" else "fp32", mode="training",
                              mixed_precision=precision != "fp32", trainable_fraction=share, batch_size=batch_size,
                              input_len=input_tokens, output_len=output_tokens,
                              device="cuda" if what == "GPU memory" else "cpu")
    except LLMCycleError as exc:
        return f"memory: not estimated ({exc})"
    total = est.total + (copies - 1) * est.weights
    flag = "" if total < 0.9 * have else " (MORE THAN THIS MACHINE HAS: lower batch_size or enable gradient " \
                                         "checkpointing)"
    return f"est. peak {total / 1e9:.1f} GB of {have / 1e9:.0f} GB {what} ({total / have:.0%}){flag}"
