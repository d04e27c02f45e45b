"""``run_task``: score a model on a benchmark task and keep every item's record.

Multiple choice: each choice's continuation (``target_delimiter + choice_format``) is scored by
its summed log-likelihood after the context (``loglik.loglikelihood``). ``acc`` is the share of
items whose highest-scoring choice is the gold one; ``acc_norm`` divides each choice's
log-likelihood by its length in characters (the formatted choice, without the delimiter) before
taking the argmax, as lm-evaluation-harness does, so long choices are not penalised for having
more tokens. Ties go to the first choice.

Generative: the model generates after the context (``llmcycle.generation.generate``), the output
is cut at the first ``stop`` string, and the task's metric compares it with the references.

The task and its data are validated, and every context built, before the model is loaded or run:
a bad row fails in a second, and nothing is written unless the whole task finished.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from llmcycle.core.errors import LLMCycleError
from llmcycle.core.files import atomic_write_json, atomic_write_jsonl
from llmcycle.evaluation import bleu, chrf, rouge_per_example
from llmcycle.evaluation.harness.items import Item, build_context, fewshot_examples, read_items
from llmcycle.evaluation.harness.loglik import loglikelihood
from llmcycle.evaluation.harness.task import TaskConfig, load_task
from llmcycle.generation import generate
from llmcycle.models.loader import LoadedModel, load_model


@dataclass
class TaskResult:
    """Scores of one model on one task; ``records`` holds one dict per item."""

    task: str
    type: str
    model: str
    metrics: dict[str, float]
    records: list[dict[str, Any]]
    n: int
    num_fewshot: int
    untrained: bool = False
    files: list[Path] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the records (what ``<task>.metrics.json`` holds)."""
        return {"task": self.task, "type": self.type, "model": self.model, "untrained": self.untrained,
                "n": self.n, "num_fewshot": self.num_fewshot, "metrics": self.metrics}


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise LLMCycleError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))  # first index among ties


def choose(logliks: Sequence[float], lengths: Sequence[int]) -> tuple[int, int]:
    """``(argmax of loglik, argmax of loglik / character length)``: the acc and acc_norm picks."""
    return _argmax(logliks), _argmax([ll / max(n, 1) for ll, n in zip(logliks, lengths)])


def _mean_and_stderr(metrics: dict[str, float], name: str, values: Sequence[float]) -> None:
    """``metrics[name]`` = mean; ``metrics[name_stderr]`` = sample std / sqrt(n) (left out below 2 items)."""
    n = len(values)
    mean = sum(values) / n
    metrics[name] = mean
    if n >= 2:
        metrics[f"{name}_stderr"] = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def _base_record(item: Item, context: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"index": item.index}
    if item.row_id is not None:
        rec["id"] = item.row_id
    rec["context"] = context
    return rec


def _run_multiple_choice(task: TaskConfig, loaded: Any, items: list[Item], contexts: list[str],
                         batch_size: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
    requests = [(ctx, task.target_delimiter + cont) for item, ctx in zip(items, contexts)
                for cont in item.continuations]
    scores = loglikelihood(loaded, requests, batch_size=batch_size)
    records, pos = [], 0
    for item, ctx in zip(items, contexts):
        ll = scores[pos:pos + len(item.continuations)]
        pos += len(item.continuations)
        pred, pred_norm = choose(ll, [len(c) for c in item.continuations])
        rec = _base_record(item, ctx)
        rec.update(choices=item.choices, continuations=item.continuations, gold=item.gold, loglik=ll,
                   pred=pred, pred_norm=pred_norm, correct=pred == item.gold, correct_norm=pred_norm == item.gold)
        records.append(rec)
    metrics: dict[str, float] = {}
    _mean_and_stderr(metrics, "acc", [float(r["correct"]) for r in records])
    _mean_and_stderr(metrics, "acc_norm", [float(r["correct_norm"]) for r in records])
    return metrics, records


def _normalise(text: str, ignore_case: bool) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.lower() if ignore_case else text


def _cut(text: str, stop: Sequence[str]) -> str:
    for s in stop:
        if s and s in text:
            text = text[:text.index(s)]
    return text.strip()


def score_generations(task: TaskConfig, predictions: list[str], references: list[list[str]]
                      ) -> tuple[float, list[float]]:
    """``(corpus score, per-item scores)`` of the task's metric. exact_match, rouge1 and rougeL are
    in [0, 1] (mean of per-item scores); bleu and chrf are sacrebleu corpus scores (0-100) with
    per-item sentence scores."""
    metric = task.metric_name
    if metric == "exact_match":
        per = [float(any(_normalise(p, task.ignore_case) == _normalise(r, task.ignore_case) for r in refs))
               for p, refs in zip(predictions, references)]
        return sum(per) / len(per), per
    if metric in ("rouge1", "rougeL"):
        per = [s[metric].fmeasure for s in rouge_per_example(predictions, references, rouge_types=(metric,))]
        return sum(per) / len(per), per
    fn, key = (bleu, "bleu") if metric == "bleu" else (chrf, "chrf")
    per = [fn([p], [refs])[key] for p, refs in zip(predictions, references)]
    return fn(predictions, references)[key], per


def _run_generative(task: TaskConfig, loaded: Any, items: list[Item], contexts: list[str],
                    batch_size: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
    raw = generate(loaded, contexts, task.generation, batch_size=batch_size)
    predictions = [_cut(text, task.stop) for text in raw]
    score, per = score_generations(task, predictions, [it.references for it in items])
    records = []
    for item, ctx, pred, s in zip(items, contexts, predictions, per):
        rec = _base_record(item, ctx)
        rec.update(prediction=pred, references=item.references, score=s)
        records.append(rec)
    metrics = {task.metric_name: score}
    if task.metric_name in ("exact_match", "rouge1", "rougeL"):  # corpus means of per-item scores
        _mean_and_stderr(metrics, task.metric_name, per)
    return metrics, records


def build_contexts(task: TaskConfig, items: list[Item], num_fewshot: int, pool: list[Item] | None = None
                   ) -> list[str]:
    """The full context of each item: description, ``num_fewshot`` solved examples, the prompt.

    Examples come from ``task.fewshot_file`` when set, else from ``pool`` (default ``items``)."""
    pool, same_file = (items if pool is None else pool), True
    if num_fewshot and task.fewshot_path is not None:
        pool, same_file = read_items(task, task.fewshot_path, what="fewshot_file"), False
    return [build_context(task, it, fewshot_examples(task, it, pool, num_fewshot, same_file)) for it in items]


def write_result(result: TaskResult, out_dir: str | Path) -> list[Path]:
    """``<out>/<task>.records.jsonl`` and ``<out>/<task>.metrics.json``, each written atomically."""
    out = Path(out_dir)
    records = atomic_write_jsonl(out / f"{result.task}.records.jsonl", result.records)
    metrics = atomic_write_json(out / f"{result.task}.metrics.json", result.summary())
    return [records, metrics]


def run_task(
    task_or_path: TaskConfig | str | Path,
    model: Any,
    out_dir: str | Path | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    num_fewshot: int | None = None,
) -> TaskResult:
    """Run a benchmark task on a model.

    Args:
        task_or_path: a ``TaskConfig``, a task YAML path, or a shipped task's name.
        model: a ``LoadedModel`` or a model source for ``load_model`` (``builtin:tiny-gpt2``).
        out_dir: when given, write ``<task>.records.jsonl`` and ``<task>.metrics.json`` there.
        batch_size: requests (multiple choice) or prompts (generative) per forward pass.
        limit: score only the first ``limit`` rows (overrides the task's ``limit``).
        num_fewshot: solved examples per question (overrides the task's ``num_fewshot``).
    """
    task = task_or_path if isinstance(task_or_path, TaskConfig) else load_task(task_or_path)
    _check_count(batch_size, "batch_size", 1)
    limit = task.limit if limit is None else _check_count(limit, "limit", 1)
    k = task.num_fewshot if num_fewshot is None else _check_count(num_fewshot, "num_fewshot", 0)
    all_items = read_items(task)  # every row is checked, limit or not
    items = all_items[:limit]
    contexts = build_contexts(task, items, k, pool=all_items)  # the few-shot pool spans every row
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    run = _run_multiple_choice if task.type == "multiple_choice" else _run_generative
    metrics, records = run(task, loaded, items, contexts, batch_size)
    result = TaskResult(task.name, task.type, loaded.label, metrics, records, len(items), k, loaded.untrained)
    if out_dir is not None:
        result.files = write_result(result, out_dir)
    return result
