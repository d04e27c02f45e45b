"""Compute budgets: training FLOPs, petaflop/s-days, Chinchilla-optimal sizes, wall-clock time.

- Training costs ~6 FLOPs per parameter per token (2 forward, 4 backward): C = 6 N D.
- Inference costs ~2 FLOPs per parameter per generated or read token.
- 1 petaflop/s-day = 1e15 FLOP/s for a day = 8.64e19 FLOPs.
- Chinchilla (Hoffmann et al. 2022): compute-optimal training uses ~20 tokens per parameter, so
  for a budget C: C = 6 N (20 N) -> N = sqrt(C / 120), D = 20 N (70e9 params -> 1.4e12 tokens).
- Wall-clock time = FLOPs / (n_gpus * peak FLOP/s * MFU), MFU being the model-FLOPs utilisation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from llmcycle.core.errors import LLMCycleError
from llmcycle.estimate import _checks

PF_DAY_FLOPS = 1e15 * 86400
"""FLOPs in one petaflop/s-day."""
CHINCHILLA_TOKENS_PER_PARAM = 20.0
TRAIN_FLOPS_PER_PARAM_TOKEN = 6.0
INFERENCE_FLOPS_PER_PARAM_TOKEN = 2.0
DEFAULT_MFU = 0.4


def training_flops(n_params: float, n_tokens: float) -> float:
    """FLOPs to train ``n_params`` parameters on ``n_tokens`` tokens: 6 N D."""
    _checks.positive("n_params", n_params)
    _checks.positive("n_tokens", n_tokens)
    return TRAIN_FLOPS_PER_PARAM_TOKEN * n_params * n_tokens


def inference_flops(n_params: float, n_tokens: float = 1) -> float:
    """FLOPs to process ``n_tokens`` tokens at inference: 2 N per token."""
    _checks.positive("n_params", n_params)
    _checks.positive("n_tokens", n_tokens)
    return INFERENCE_FLOPS_PER_PARAM_TOKEN * n_params * n_tokens


def flops_to_pf_days(flops: float) -> float:
    """FLOPs expressed in petaflop/s-days."""
    _checks.positive("flops", flops, allow_zero=True)
    return flops / PF_DAY_FLOPS


def pf_days_to_flops(pf_days: float) -> float:
    """Petaflop/s-days expressed in FLOPs."""
    _checks.positive("pf_days", pf_days, allow_zero=True)
    return pf_days * PF_DAY_FLOPS


def chinchilla_tokens(n_params: float) -> float:
    """Compute-optimal training tokens for a model of ``n_params``: 20 per parameter."""
    _checks.positive("n_params", n_params)
    return CHINCHILLA_TOKENS_PER_PARAM * n_params


def training_seconds(flops: float, n_gpus: int = 1, peak_tflops: float | None = None,
                     mfu: float = DEFAULT_MFU) -> float | None:
    """Wall-clock seconds for ``flops`` on ``n_gpus`` devices of ``peak_tflops`` at ``mfu``; None without hardware."""
    _checks.positive("flops", flops, allow_zero=True)
    _checks.positive("n_gpus", n_gpus, integer=True)
    _checks.positive("mfu", mfu)
    if mfu > 1:
        raise LLMCycleError(f"mfu: model-FLOPs utilisation is a fraction in (0, 1], got {mfu!r}")
    if peak_tflops is None:
        return None
    _checks.positive("peak_tflops", peak_tflops)
    return flops / (n_gpus * peak_tflops * 1e12 * mfu)


@dataclass(frozen=True)
class ComputePlan:
    """A training run's size, cost and (with hardware) duration."""

    n_params: float
    n_tokens: float
    flops: float
    pf_days: float
    tokens_per_param: float
    chinchilla_tokens: float
    """Compute-optimal tokens for this model size (20 per parameter)."""
    n_gpus: int = 1
    peak_tflops: float | None = None
    mfu: float = DEFAULT_MFU
    seconds: float | None = None

    @property
    def days(self) -> float | None:
        return None if self.seconds is None else self.seconds / 86400

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "days": self.days}

    def rows(self) -> list[tuple[str, str]]:
        """(item, value) rows for a two-column table."""
        rows = [
            ("parameters", _si(self.n_params)), ("training tokens", _si(self.n_tokens)),
            ("tokens per parameter", f"{self.tokens_per_param:.1f} (Chinchilla-optimal: 20)"),
            ("training FLOPs (6ND)", f"{self.flops:.3e}"), ("petaflop/s-days", f"{self.pf_days:,.2f}"),
            ("Chinchilla-optimal tokens for this size", _si(self.chinchilla_tokens)),
        ]
        if self.seconds is not None:
            rows.append((f"time on {self.n_gpus} x {self.peak_tflops:g} TFLOP/s at {self.mfu:.0%} MFU",
                         _duration(self.seconds)))
        return rows


def plan_training(n_params: float, n_tokens: float | None = None, *, n_gpus: int = 1,
                  peak_tflops: float | None = None, mfu: float = DEFAULT_MFU) -> ComputePlan:
    """FLOPs, PF/s-days and (with ``peak_tflops``) time to train ``n_params`` on ``n_tokens``.

    Without ``n_tokens`` the Chinchilla-optimal 20 tokens per parameter are assumed.
    """
    _checks.positive("n_params", n_params)
    tokens = chinchilla_tokens(n_params) if n_tokens is None else n_tokens
    flops = training_flops(n_params, tokens)
    return ComputePlan(
        n_params=float(n_params), n_tokens=float(tokens), flops=flops, pf_days=flops_to_pf_days(flops),
        tokens_per_param=tokens / n_params, chinchilla_tokens=chinchilla_tokens(n_params), n_gpus=int(n_gpus),
        peak_tflops=peak_tflops, mfu=mfu, seconds=training_seconds(flops, n_gpus, peak_tflops, mfu),
    )


def plan_budget(flops: float | None = None, *, pf_days: float | None = None, n_gpus: int = 1,
                peak_tflops: float | None = None, mfu: float = DEFAULT_MFU) -> ComputePlan:
    """The compute-optimal model for a budget (FLOPs or PF/s-days): N = sqrt(C / 120), D = 20 N."""
    if (flops is None) == (pf_days is None):
        raise LLMCycleError("flops: give the budget as flops or as pf_days (exactly one)")
    budget = flops if flops is not None else pf_days_to_flops(pf_days)  # type: ignore[arg-type]
    _checks.positive("flops" if flops is not None else "pf_days", budget)
    n_params = math.sqrt(budget / (TRAIN_FLOPS_PER_PARAM_TOKEN * CHINCHILLA_TOKENS_PER_PARAM))
    return plan_training(n_params, CHINCHILLA_TOKENS_PER_PARAM * n_params, n_gpus=n_gpus,
                         peak_tflops=peak_tflops, mfu=mfu)


def _si(x: float) -> str:
    """1.4e12 -> '1.40T'."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:,.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.1f} minutes"
