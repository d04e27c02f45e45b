"""Benchmark harness: tasks in YAML over local JSONL files, scored by log-likelihood or by a metric.

* ``task``: ``TaskConfig`` (the YAML schema), ``load_task``, ``shipped_tasks``.
* ``items``: rows -> validated items, few-shot contexts.
* ``loglik``: ``loglikelihood`` of continuations for causal and seq2seq models.
* ``runner``: ``run_task`` -> ``TaskResult`` (metrics, per-item records), optional output files.
* ``lm_eval_bridge``: ``run_lm_eval`` for tasks lm-evaluation-harness defines (when installed).

Importing this package loads neither torch nor a model.
"""

from llmcycle.evaluation.harness.lm_eval_bridge import lm_eval_available, run_lm_eval
from llmcycle.evaluation.harness.loglik import loglikelihood
from llmcycle.evaluation.harness.runner import TaskResult, choose, run_task, score_generations
from llmcycle.evaluation.harness.task import TaskConfig, TaskFields, load_task, shipped_tasks

__all__ = [
    "TaskConfig",
    "TaskFields",
    "TaskResult",
    "choose",
    "lm_eval_available",
    "load_task",
    "loglikelihood",
    "run_lm_eval",
    "run_task",
    "score_generations",
    "shipped_tasks",
]
