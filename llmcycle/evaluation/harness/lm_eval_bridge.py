"""Run a task that lm-evaluation-harness defines (hellaswag, arc_easy, mmlu, ...) through it.

Optional: ``lm_eval`` is imported only here, only when called; without it the error says
``pip install lm-eval``. Any llmcycle model source works: the model is loaded with
``load_model`` and handed to lm-eval's ``HFLM`` as an object, so builtin and local models run too.
Note that lm-eval fetches its task data from the Hugging Face hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation.harness.runner import TaskResult, write_result
from llmcycle.evaluation.harness.task import load_task, shipped_tasks
from llmcycle.models.loader import LoadedModel, load_model


def _import_lm_eval() -> Any:
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM  # noqa: F401
    except ImportError:
        raise LLMCycleError("lm-evaluation-harness is not installed; `pip install lm-eval` to run its tasks, "
                            "or run a task YAML of llmcycle's own (`llmcycle benchmark --help`)") from None
    return lm_eval


def lm_eval_available() -> bool:
    """True when lm-evaluation-harness can be imported."""
    try:
        _import_lm_eval()
    except LLMCycleError:
        return False
    return True


def lm_eval_task_name(task: str) -> str:
    """``task`` itself, or the ``lm_eval_task`` named by a task YAML / shipped task of that name."""
    if not (Path(task).is_file() or task in shipped_tasks()):
        return task
    cfg = load_task(task)
    if not cfg.lm_eval_task:
        raise LLMCycleError(f"{cfg.where}: lm_eval_task: not set, so lm-evaluation-harness has no such task; "
                            "name its lm-eval equivalent there, or run without --lm-eval")
    return cfg.lm_eval_task


def _metrics(results: dict[str, Any]) -> dict[str, float]:
    """lm-eval's ``{"acc,none": 0.5, "alias": ...}`` as ``{"acc": 0.5}`` (numbers only)."""
    out = {}
    for key, value in results.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key.split(",")[0]] = float(value)
    return out


def run_lm_eval(
    task_name: str,
    model: Any,
    *,
    num_fewshot: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    out_dir: str | Path | None = None,
) -> TaskResult:
    """Run lm-evaluation-harness task ``task_name`` on ``model`` (a ``LoadedModel`` or a model source).

    ``task_name`` may also be a task YAML (or shipped task) whose ``lm_eval_task`` names the task.

    Returns a ``TaskResult`` with lm-eval's metrics (``acc``, ``acc_norm``, ``..._stderr``) and no
    per-item records (lm-eval keeps its own samples).
    """
    lm_eval = _import_lm_eval()
    from lm_eval.models.huggingface import HFLM

    task_name = lm_eval_task_name(task_name)
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    if loaded.kind not in ("causal", "seq2seq"):
        raise LLMCycleError(f"model: lm-eval needs a causal or seq2seq model, not a {loaded.kind}")
    lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, backend=loaded.kind, batch_size=batch_size)
    try:
        out = lm_eval.simple_evaluate(model=lm, tasks=[task_name], num_fewshot=num_fewshot, limit=limit)
    except (KeyError, ValueError) as exc:
        raise LLMCycleError(f"lm-eval could not run task {task_name!r}: {exc}") from None
    if not out or task_name not in out.get("results", {}):
        raise LLMCycleError(f"lm-eval returned no results for task {task_name!r}")
    n = out.get("n-samples", {}).get(task_name, {}).get("effective", 0)
    result = TaskResult(task_name, "lm_eval", loaded.label, _metrics(out["results"][task_name]), [], int(n),
                        num_fewshot or 0, loaded.untrained)
    if out_dir is not None:
        result.files = write_result(result, out_dir)
    return result
