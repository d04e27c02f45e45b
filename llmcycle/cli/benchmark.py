"""``llmcycle benchmark``: run a benchmark task (a YAML, a shipped task, or an lm-eval task) on a model."""

from __future__ import annotations

from typing import Optional

import typer

from llmcycle.cli.output import console, table
from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation.harness import load_task, run_lm_eval, run_task, shipped_tasks


def benchmark_cmd(
    task: Optional[str] = typer.Argument(None, help="Task YAML path or shipped task name (leave out to list the "
                                         "shipped tasks); with --lm-eval, an lm-evaluation-harness task name."),
    model: Optional[str] = typer.Option(None, "--model", help="Model to score: hub id, local directory or "
                                        "builtin:NAME (e.g. builtin:minilm-seq2seq)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Score only the first N rows."),
    num_fewshot: Optional[int] = typer.Option(None, "--num-fewshot", help="Solved examples before each question "
                                              "(default: the task's num_fewshot)."),
    out: Optional[str] = typer.Option(None, "--out", help="Write <task>.records.jsonl and <task>.metrics.json "
                                      "into this folder."),
    batch_size: int = typer.Option(8, "--batch-size", help="Requests per forward pass."),
    lm_eval: bool = typer.Option(False, "--lm-eval", help="Run TASK through lm-evaluation-harness with llmcycle's "
                                 "model wrapper (pip install lm-eval): the shipped tasks (capitals, "
                                 "general_knowledge) run offline from their lm-eval YAML; lm-eval's own tasks fetch "
                                 "their data from the hub. Per-sample records go to --out."),
    chat: bool = typer.Option(False, "--chat", help="With --lm-eval: lm-eval's apply_chat_template, every context "
                              "rendered through the model's chat template as llmcycle's other stages render chat "
                              "prompts (a chat model only)."),
    show: int = typer.Option(0, "--show", help="Print this many per-item records."),
) -> None:
    """Score a model on a benchmark: multiple choice by log-likelihood (acc, acc_norm) or generative by a metric."""
    if task is None:
        rows = []
        for name in shipped_tasks():
            cfg = load_task(name)
            rows.append((name, cfg.type, cfg.metric_name if cfg.type == "generative" else "acc, acc_norm", cfg.data))
        console.print(table("shipped benchmark tasks", rows, ("name", "type", "metrics", "data")))
        return
    if not model:
        raise LLMCycleError("--model is required: e.g. --model builtin:minilm-seq2seq (see `llmcycle models`)")
    if chat and not lm_eval:
        raise LLMCycleError("--chat: chat-templated contexts are lm-eval's (apply_chat_template); add --lm-eval")
    if lm_eval:
        result = run_lm_eval(task, model, num_fewshot=num_fewshot, limit=limit, batch_size=batch_size, out_dir=out,
                             apply_chat_template=chat)
    else:
        result = run_task(task, model, out_dir=out, batch_size=batch_size, limit=limit, num_fewshot=num_fewshot)
    console.print(f"{result.task}: {result.type}, {result.n} items, {result.num_fewshot}-shot, "
                  f"model {result.model}", highlight=False)
    console.print(table("", [(k, f"{v:.4f}") for k, v in result.metrics.items()], ("metric", "value")))
    if result.untrained:
        console.print("note: the model's weights are random (untrained); its scores are chance level", highlight=False)
    for rec in result.records[:show]:
        console.print(rec, highlight=False, markup=False)
    for path in result.files:
        console.print(f"wrote {path}", highlight=False)
