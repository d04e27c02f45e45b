"""lm-evaluation-harness as the benchmark engine: its tasks, scored by llmcycle's models and code.

``run_lm_eval(task, model)`` runs an lm-eval task (hellaswag, arc_easy, mmlu, ..., or a local YAML
task) through ``LLMCycleLM`` (``lm_eval_model``), the lm-eval model registered as ``llmcycle``:
log-likelihoods come from llmcycle's ``loglik`` encoding, generations from llmcycle's engine, so
any model ``load_model`` loads runs (builtins, folders, hub ids, adapters). Tasks are looked up in
llmcycle's shipped lm-eval tasks (``LM_EVAL_TASKS``: ``capitals`` and ``general_knowledge``, the
same rows and scoring as the llmcycle tasks of those names, tagged ``llmcycle``) and the
``include_path`` folders (a task there wins over a shipped one of the same name), else among
lm-eval's own tasks (which fetch their data from the Hugging Face hub). lm-eval's per-sample log
comes back as the result's records, written to ``<out>/<task>.records.jsonl``.

Local data: lm-eval passes a task's ``dataset_kwargs`` to ``datasets.load_dataset`` unchanged, and
datasets reads a relative ``data_files`` path from the working directory. A task YAML that names
``custom_dataset: !function llmcycle.evaluation.harness.lm_eval_bridge.local_dataset`` has its
``data_files`` (JSON Lines) read relative to its own folder instead, offline.

Where the hand-written harness (``runner.run_task``) stays: tasks written in llmcycle's task
schema (``task.TaskConfig``), which lm-eval cannot read: answers given as letters or choice texts,
``choice_format``, rows checked up front with errors naming file, line and field. Their few-shot
examples are drawn per item from a seeded generator (``fewshot_file`` or the task's other rows);
lm-eval's sampler draws others, so k-shot scores of the two engines agree only at k = 0. And
without lm-eval installed, which stays optional.

``lm_eval`` is imported only when called; without it the error says ``pip install lm-eval``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from llmcycle.core.errors import DataError, LLMCycleError
from llmcycle.data.readers import read_jsonl_objects
from llmcycle.evaluation.harness.runner import TaskResult, write_result
from llmcycle.evaluation.harness.task import load_task, shipped_tasks

LM_EVAL_TASKS = Path(str(resources.files("llmcycle").joinpath("evaluation", "tasks", "lm_eval")))


def _import_lm_eval() -> Any:
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager  # noqa: F401
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


def local_dataset(data_files: str | list[str] | dict[str, str | list[str]], config_source: str | None = None,
                  **_: Any) -> Any:
    """lm-eval ``custom_dataset`` hook: a ``DatasetDict`` of the JSON Lines files ``data_files`` names.

    ``data_files`` is the task's ``dataset_kwargs.data_files`` (one path, a list, or ``{split:
    path(s)}``; a plain path or list is split ``train``, as in datasets). A relative path is read
    from the folder of the task YAML (``config_source``, which lm-eval passes with the task's
    metadata), else from the working directory. Errors name the file and line.
    """
    import datasets

    base = Path(config_source).parent if config_source and config_source != "inline" else Path.cwd()
    splits = data_files if isinstance(data_files, dict) else {"train": data_files}
    out = {}
    for split, files in splits.items():
        rows = []
        for name in [files] if isinstance(files, str) else files:
            path = Path(name).expanduser()
            rows += [row for _, row in read_jsonl_objects(path if path.is_absolute() else base / path,
                                                          what=f"{config_source or 'task'}: data_files.{split}")]
        if not rows:
            raise DataError(f"{config_source or 'task'}: data_files.{split}: no rows")
        out[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(out)


def task_manager(task: str, include_path: str | Path | Sequence[str | Path] | None = None) -> tuple[str, Any]:
    """``(lm-eval task name, TaskManager that knows it)`` for ``task``.

    Looked up in ``LM_EVAL_TASKS`` and the ``include_path`` folders first (indexing them takes
    milliseconds); otherwise ``task`` (or the ``lm_eval_task`` its llmcycle YAML names) is taken
    to be one of lm-eval's own tasks, and lm-eval's whole task index is built too (seconds).
    """
    from lm_eval.tasks import TaskManager

    extra = [include_path] if isinstance(include_path, (str, Path)) else list(include_path or [])
    for folder in extra:
        if not Path(folder).expanduser().is_dir():
            raise LLMCycleError(f"include_path: no such folder {folder}")
    paths = [LM_EVAL_TASKS, *(Path(f).expanduser() for f in extra)]
    local = TaskManager(include_path=paths, include_defaults=False)
    name = task if task in local.all_tasks else lm_eval_task_name(task)
    return name, (local if name in local.all_tasks else TaskManager(include_path=paths))


def _metrics(results: dict[str, Any]) -> dict[str, float]:
    """lm-eval's ``{"acc,none": 0.5, "alias": ..., "sample_len": 16}`` as ``{"acc": 0.5}`` (metrics only)."""
    out = {}
    for key, value in results.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "sample_len":
            out[key.split(",")[0]] = float(value)
    return out


def _json_safe(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """lm-eval's sample dicts (tuples, numpy numbers) as plain JSON values."""
    from lm_eval.utils import handle_non_serializable

    return [json.loads(json.dumps(s, default=handle_non_serializable, ensure_ascii=False)) for s in samples]


def run_lm_eval(
    task_name: str,
    model: Any,
    *,
    num_fewshot: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    out_dir: str | Path | None = None,
    include_path: str | Path | Sequence[str | Path] | None = None,
    apply_chat_template: bool = False,
) -> TaskResult:
    """Run lm-evaluation-harness task ``task_name`` on ``model`` through ``LLMCycleLM``.

    Args:
        task_name: a task of ``LM_EVAL_TASKS`` or of an ``include_path`` folder, one of lm-eval's
            own, or a task YAML (or shipped task) whose ``lm_eval_task`` names one.
        model: an ``LLMCycleLM``, a ``LoadedModel`` or a model source (``builtin:tiny-t5``).
        num_fewshot, limit: as in ``lm_eval.simple_evaluate``.
        batch_size: requests per forward pass (ignored when ``model`` is an ``LLMCycleLM``).
        out_dir: when given, write ``<task>.records.jsonl`` (lm-eval's per-sample log, one line per
            document) and ``<task>.metrics.json`` there.
        include_path: folder(s) of lm-eval task YAMLs to search as well.
        apply_chat_template: render every context through the model's chat template (lm-eval's
            ``apply_chat_template``; ``LLMCycleLM.apply_chat_template`` is llmcycle's chat path).

    Returns a ``TaskResult`` of type ``lm_eval`` with lm-eval's metrics (``acc``, ``acc_norm``,
    ``exact_match``, ``..._stderr``) and its per-sample log as records.
    """
    lm_eval = _import_lm_eval()
    from llmcycle.evaluation.harness.lm_eval_model import LLMCycleLM

    name, manager = task_manager(task_name, include_path)
    lm = model if isinstance(model, LLMCycleLM) else LLMCycleLM(model, batch_size=batch_size)
    if apply_chat_template:
        lm.chat_template(True)  # a model without one: refused before lm-eval builds any request
    try:
        out = lm_eval.simple_evaluate(model=lm, tasks=[name], task_manager=manager, num_fewshot=num_fewshot,
                                      limit=limit, log_samples=True, apply_chat_template=apply_chat_template)
    except LLMCycleError:  # ours (a data file, a generation setting) already name what is wrong
        raise
    except (KeyError, ValueError) as exc:
        raise LLMCycleError(f"lm-eval could not run task {name!r}: {exc}") from None
    ran = list((out or {}).get("results", {}))
    if name not in ran:
        more = f": it ran {', '.join(ran)} (a tag); name one of them" if ran else ""
        raise LLMCycleError(f"lm-eval returned no results for task {name!r}{more}")
    n = out.get("n-samples", {}).get(name, {}).get("effective", 0)
    shots = out.get("n-shot", {}).get(name, num_fewshot or 0)
    records = _json_safe(out.get("samples", {}).get(name, []))
    result = TaskResult(name, "lm_eval", lm.loaded.label, _metrics(out["results"][name]), records, int(n),
                        int(shots), lm.loaded.untrained)
    if out_dir is not None:
        result.files = write_result(result, out_dir)
    return result
