"""``llmcycle pretrain`` and ``llmcycle scaling``: one-stage recipes of the ``pretrain`` and ``scaling`` stages
(``llmcycle.cli.onestage``). Option help comes from the config fields; ``--set`` reaches every field."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from llmcycle.cli.onestage import run_one_stage
from llmcycle.cli.output import field_help
from llmcycle.cli.stage_commands import PUSH_HELP, RUN_DIR_HELP, RUNS_DIR_HELP, SET_HELP, with_push
from llmcycle.core.config import DataConfig
from llmcycle.pretrain.config import ArchitectureOptions, PretrainConfig
from llmcycle.pretrain.scaling import ScalingConfig

SCRATCH_MODEL = "builtin:tiny-gpt2"
"""The recipe's model of a from-scratch run: never loaded (``init: scratch`` builds its own), only named."""


def pretrain_cmd(
    continue_from: Optional[str] = typer.Option(
        None, "--continue", help="Continue pre-training this model (hub id, folder or builtin:NAME) on the corpus: "
        "domain adaptation (init: received). Without it, a model is built from scratch."),
    data: str = typer.Option("builtin:dialogues", help=field_help(DataConfig, "source", "Its train split is the "
                             "corpus, its validation split the in-domain held-out text.")),
    files: Optional[List[str]] = typer.Option(None, "--file", help=field_help(PretrainConfig, "files",
                                              "Repeatable.")),
    family: str = typer.Option("gpt2", help=field_help(ArchitectureOptions, "family")),
    layers: int = typer.Option(4, help=field_help(ArchitectureOptions, "layers")),
    width: int = typer.Option(256, help=field_help(ArchitectureOptions, "width")),
    heads: int = typer.Option(4, help=field_help(ArchitectureOptions, "heads")),
    context: int = typer.Option(256, help=field_help(ArchitectureOptions, "context")),
    objective: Optional[str] = typer.Option(None, help=field_help(PretrainConfig, "objective")),
    tokenizer: Optional[str] = typer.Option(None, help=field_help(PretrainConfig, "tokenizer")),
    max_tokens: Optional[int] = typer.Option(None, help=field_help(PretrainConfig, "max_tokens")),
    max_steps: Optional[int] = typer.Option(None, help=field_help(PretrainConfig, "max_steps")),
    batch_size: int = typer.Option(16, help=field_help(PretrainConfig, "batch_size")),
    learning_rate: Optional[float] = typer.Option(None, "--lr", help=field_help(PretrainConfig, "learning_rate",
                                                  "Default 1e-3 from scratch, 1e-4 when continuing.")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    n: Optional[int] = typer.Option(None, help=field_help(DataConfig, "n")),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", metavar="REPO_ID", help=PUSH_HELP),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Pre-train a model from scratch (causal LM, masked LM, T5 span corruption) or continue pre-training one on
    in-domain text: packed blocks, exact resume, held-out loss and perplexity, tokens/s and MFU."""
    fields: dict[str, Any] = {"init": "received" if continue_from else "scratch", "batch_size": batch_size,
                              "learning_rate": learning_rate or (1e-4 if continue_from else 1e-3)}
    if not continue_from:
        fields["architecture"] = {"family": family, "layers": layers, "width": width, "heads": heads,
                                  "context": context}
        if tokenizer:
            fields["tokenizer"] = tokenizer
    for key, value in (("objective", objective), ("max_tokens", max_tokens), ("max_steps", max_steps),
                       ("files", files)):
        if value:
            fields[key] = value
    data_cfg = {"source": data, "n": n, "require_references": False}
    run_one_stage("pretrain", continue_from or SCRATCH_MODEL, data_cfg, with_push(fields, push_to_hub), set_, run_dir,
                  runs_dir)


def scaling_cmd(
    data: str = typer.Option("builtin:dialogues", help=field_help(DataConfig, "source", "It needs a train and a "
                             "validation split.")),
    budget: Optional[List[float]] = typer.Option(None, "--budget", help=field_help(ScalingConfig, "budgets",
                                                 "Repeatable.")),
    tokenizer: Optional[str] = typer.Option(None, help=field_help(ScalingConfig, "tokenizer")),
    context: int = typer.Option(128, help=field_help(ScalingConfig, "context")),
    set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP + " Sizes: --set 'sizes=[{layers: 2, "
                                             "width: 128}, ...]'."),
    n: Optional[int] = typer.Option(None, help=field_help(DataConfig, "n")),
    run_dir: Optional[str] = typer.Option(None, "--run-dir", help=RUN_DIR_HELP),
    runs_dir: Optional[str] = typer.Option(None, help=RUNS_DIR_HELP),
) -> None:
    """Measure and fit a scaling law: pre-train a sweep of model sizes x compute budgets, fit L(N, D), give the
    compute-optimal N* and D* beside Chinchilla's rule, and check the fit on a larger held-out model."""
    fields: dict[str, Any] = {"context": context}
    if budget:
        fields["budgets"] = budget
    if tokenizer:
        fields["tokenizer"] = tokenizer
    data_cfg = {"source": data, "n": n, "require_references": False}
    run_one_stage("scaling", SCRATCH_MODEL, data_cfg, fields, set_, run_dir, runs_dir)
