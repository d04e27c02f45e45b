"""Scope and select: how much memory and compute a model needs.

- ``ArchSpec.from_config(config)``: what memory depends on, with an exact parameter count.
- ``estimate_memory(model, ...)``: itemised bytes per device for inference or training
  (weights, gradients, optimiser states, activations, overhead), rule-of-thumb or counted from
  the architecture for a batch shape; DDP / ZeRO-1/2/3 / FSDP per-GPU figures.
- ``plan_training`` / ``plan_budget``: 6ND FLOPs, PF/s-days, Chinchilla-optimal sizes, time.

Importing this package is cheap: nothing here imports torch or transformers.
"""

from llmcycle.estimate.arch import ArchSpec, StackSpec
from llmcycle.estimate.compute import (
    PF_DAY_FLOPS,
    ComputePlan,
    chinchilla_tokens,
    flops_to_pf_days,
    inference_flops,
    pf_days_to_flops,
    plan_budget,
    plan_training,
    training_flops,
    training_seconds,
)
from llmcycle.estimate.memory import DTYPE_BYTES, GB, MemoryEstimate, estimate_memory

__all__ = [
    "DTYPE_BYTES", "GB", "PF_DAY_FLOPS", "ArchSpec", "ComputePlan", "MemoryEstimate", "StackSpec",
    "chinchilla_tokens", "estimate_memory", "flops_to_pf_days", "inference_flops", "pf_days_to_flops",
    "plan_budget", "plan_training", "training_flops", "training_seconds",
]
