"""``llmcycle estimate memory|compute``: the scope step's calculators (no model is loaded for --params)."""

from __future__ import annotations

import math
from typing import Any, Optional

import typer

from llmcycle.cli.output import console, table
from llmcycle.core.errors import LLMCycleError
from llmcycle.estimate import estimate_memory, plan_budget, plan_training
from llmcycle.models.info import arch_spec

DTYPE_ROWS = ("fp32", "fp16", "bf16", "int8")


def estimate_memory_cmd(
    params: Optional[float] = typer.Option(None, "--params", help="Parameter count, e.g. 1e9 (or use --model)."),
    model: Optional[str] = typer.Option(None, "--model", help="Hub id, local dir or builtin:NAME: parameters and "
                                        "architecture come from it (bundled hub ids work offline)."),
    dtype: Optional[str] = typer.Option(None, help="fp32 | fp16 | bf16 | int8 | int4. Default: compare them."),
    mode: str = typer.Option("training", help="training | inference."),
    optimizer: str = typer.Option("adam", help="adam | adam_8bit | sgd | sgd_momentum."),
    mixed_precision: bool = typer.Option(False, "--mixed-precision", help="16-bit weights with fp32 master copy."),
    trainable_fraction: Optional[float] = typer.Option(None, help="Fraction of parameters trained (LoRA, frozen)."),
    batch_size: Optional[int] = typer.Option(None, help="Micro-batch size: activations counted from the "
                                             "architecture (needs --model)."),
    input_len: Optional[int] = typer.Option(None, help="Input / prompt tokens per example."),
    output_len: Optional[int] = typer.Option(None, help="Output tokens per example."),
    grad_checkpointing: bool = typer.Option(False, "--grad-checkpointing", help="Recompute layers in backward."),
    parallelism: str = typer.Option("none", help="none | ddp | zero1 | zero2 | zero3 | fsdp."),
    n_gpus: int = typer.Option(1, help="GPUs the model is trained on (per-GPU figures)."),
) -> None:
    """Memory to run or train a model: weights, gradients, optimiser states, activations, per device."""
    if (params is None) == (model is None):
        raise LLMCycleError("give exactly one of --params (e.g. 1e9) or --model (e.g. google/flan-t5-base)")
    if model is not None:
        target: Any = arch_spec(model)
    elif not math.isfinite(params):  # type: ignore[arg-type]
        raise LLMCycleError(f"n_params (--params): must be a finite parameter count (e.g. 1e9), got {params}")
    else:
        target = int(params)  # type: ignore[arg-type]
    kw = dict(mode=mode, optimizer=optimizer, mixed_precision=mixed_precision, trainable_fraction=trainable_fraction,
              batch_size=batch_size, input_len=input_len, output_len=output_len,
              grad_checkpointing=grad_checkpointing, parallelism=parallelism, n_gpus=n_gpus)
    if dtype is None:
        rows = []
        for dt in DTYPE_ROWS:
            w = estimate_memory(target, dtype=dt, mode="inference").weights
            rows.append((dt, f"{w / 1e9:,.2f} GB"))
        console.print(table("weights by dtype", rows, ("dtype", "weights (1 GB = 1e9 B)")))
        dtype = "fp32"
    est = estimate_memory(target, dtype=dtype, **kw)
    title = f"{mode} memory, {dtype}" + (f", {parallelism} x {n_gpus} GPUs" if parallelism != "none" else "")
    console.print(table(title, [(name, gb, note) for name, _, gb, note in est.rows()], ("item", "size", "note")))
    full = estimate_memory(target, dtype=dtype, mode="inference").weights or 1
    if est.weights < full:  # ZeRO-3 / FSDP: this device holds a shard of the weights
        console.print(f"total per GPU = {est.total / 1e9:,.2f} GB = {est.total / full:.1f}x the whole model's weights "
                      f"({full / 1e9:,.2f} GB in {dtype}); each GPU holds {est.weights / 1e9:,.2f} GB of them")
    else:
        console.print(f"total = {est.total / full:.1f}x the weights")
    for note in est.notes:
        console.print(f"note: {note}", highlight=False)
    if parallelism == "none" and n_gpus > 1 or parallelism != "none":
        rows = []
        for strat in ("ddp", "zero1", "zero2", "zero3"):
            e = estimate_memory(target, dtype=dtype, **{**kw, "parallelism": strat})
            rows.append((strat, f"{e.model_states / 1e9:,.2f} GB", f"{e.total / 1e9:,.2f} GB"))
        console.print(table(f"per GPU across {n_gpus} GPUs", rows, ("strategy", "model states", "total")))


def estimate_compute_cmd(
    params: Optional[float] = typer.Option(None, "--params", help="Parameter count, e.g. 70e9."),
    tokens: Optional[float] = typer.Option(None, "--tokens", help="Training tokens (default: Chinchilla-optimal "
                                           "20 per parameter)."),
    budget_flops: Optional[float] = typer.Option(None, "--budget-flops", help="Compute budget in FLOPs: plan the "
                                                 "compute-optimal model size and tokens."),
    budget_pf_days: Optional[float] = typer.Option(None, "--budget-pf-days", help="Budget in petaflop/s-days."),
    n_gpus: int = typer.Option(1, help="GPUs, for the wall-clock time."),
    peak_tflops: Optional[float] = typer.Option(None, help="Peak TFLOP/s per GPU (e.g. 989 for H100 bf16)."),
    mfu: float = typer.Option(0.4, help="Model FLOPs utilisation assumed for the time."),
) -> None:
    """Training compute: 6·N·D FLOPs, petaflop/s-days, Chinchilla-optimal tokens, budget plans."""
    if params is not None and (budget_flops or budget_pf_days):
        raise LLMCycleError("give --params (with optional --tokens) or a budget (--budget-flops / --budget-pf-days)")
    if params is not None:
        plan = plan_training(params, tokens, n_gpus=n_gpus, peak_tflops=peak_tflops, mfu=mfu)
        title = "training compute"
    elif budget_flops or budget_pf_days:
        plan = plan_budget(budget_flops, pf_days=budget_pf_days, n_gpus=n_gpus, peak_tflops=peak_tflops, mfu=mfu)
        title = "compute-optimal plan for the budget (Chinchilla: D = 20 N, C = 6 N D)"
    else:
        raise LLMCycleError("give --params (e.g. 70e9) or a budget (--budget-flops 1e23 / --budget-pf-days 100)")
    console.print(table(title, plan.rows(), ("item", "value")))
    console.print(f"Chinchilla-optimal tokens: {plan.chinchilla_tokens:.3e}", highlight=False)
