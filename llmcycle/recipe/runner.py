"""The recipe runner: executes a planned stage chain into a run directory, resumably.

The runner only composes stages: the plan (``llmcycle.recipe.plan``) says what each stage receives
and hands on; each stage writes into ``<run>/<NN>-<kind>/`` and returns its report section. A stage
that finished with the same config (and the same models upstream) is skipped on a re-run of the
same directory (``--run-dir``), so an interrupted run resumes where it stopped. A failing stage
leaves the earlier ones intact and the error says how to resume; a run that this call created and
whose first stage refused before writing anything is removed whole (a refusal leaves nothing behind).
One process at a time writes a run directory: the runner holds its lock (``llmcycle.core.lock``) from
opening it to the end, so a second run on the same folder is refused naming the first. Under
``accelerate launch`` every process runs the stages (the tune stage trains in all of them); only the
main process holds the lock and writes the run's own files.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.core.files import atomic_write_json, atomic_write_text, config_hash
from llmcycle.core.lock import LOCK_NAME, FolderLock, FolderLocked
from llmcycle.data import load_data_from_config
from llmcycle.models.card import write_model_card
from llmcycle.models.hub import push_folder
from llmcycle.recipe.plan import Step, plan_recipe
from llmcycle.recipe.recipe import Recipe
from llmcycle.recipe.report import write_run_report
from llmcycle.recipe.rundir import RunDir
from llmcycle.recipe.template_check import check_recipe, recipe_pairs
from llmcycle.stages import ModelHandoff, StageContext, StageOutput

log = logging.getLogger("llmcycle")

_interrupted: list[Path] = []  # the run directory of the last run_recipe stopped by Ctrl-C in this process


def interrupted_run() -> Path | None:
    """The run directory of the last ``run_recipe`` that Ctrl-C stopped in this process (the CLI prints how to
    resume it); None when none was."""
    return _interrupted[-1] if _interrupted else None


def environment() -> dict[str, Any]:
    """Python, platform and library versions, for the run directory."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("llmcycle", "torch", "transformers", "peft", "trl", "datasets", "accelerate", "tokenizers"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "versions": versions, "argv": sys.argv}


def select_stages(recipe: Recipe, only: str | None, from_stage: str | None) -> list[int]:
    """Indices of the stages to run: all, ``only`` one kind, or ``from_stage`` on."""
    kinds = [k for k, _ in recipe.stage_configs()]
    for name in (only, from_stage):
        if name is not None and name not in kinds:
            raise LLMCycleError(f"stage {name!r} is not in this recipe; its stages: {', '.join(kinds)}")
    if only:
        return [i for i, k in enumerate(kinds) if k == only]
    start = kinds.index(from_stage) if from_stage else 0
    return list(range(start, len(kinds)))


def _world() -> tuple[int, bool]:
    """(processes, whether this is the main one) under ``accelerate launch`` / ``torchrun``; (1, True) alone."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")) == 0


def _barrier() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def open_run(recipe: Recipe, run_dir: str | Path | None) -> tuple[RunDir, FolderLock | None]:
    """The run directory, locked: a new one under ``runs_dir``, or ``run_dir`` (created when new or empty, else
    resumed when it is an earlier run of the same model). Returns it with its lock (None in the processes of
    ``accelerate launch`` other than the main one: the main process holds it for all)."""
    world, main = _world()
    if world > 1:
        if run_dir is None:
            raise LLMCycleError("--run-dir: under `accelerate launch` every process must write to the same run; "
                                "pass --run-dir runs/NAME (it is created when missing)")
        if main:
            run, lock = _open(recipe, run_dir)
        _barrier()
        return (run, lock) if main else (RunDir(Path(run_dir)), None)
    return _open(recipe, run_dir)


def _open(recipe: Recipe, run_dir: str | Path | None) -> tuple[RunDir, FolderLock]:
    if run_dir is None:
        run = RunDir.create(recipe.runs_dir, recipe.name)
        return run, _lock(run)
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise LLMCycleError(f"--run-dir {run_dir}: is a file, not a folder")
    if not path.exists() or not any(p.name != LOCK_NAME for p in path.iterdir()):  # new (or empty): start here
        run = RunDir.make(path)
        return run, _lock(run)
    run = RunDir(path)
    lock = _lock(run)  # before reading it: another process may be writing it
    try:
        run = RunDir.resume(path)
        saved = json.loads(run.file("recipe.json").read_text(encoding="utf-8"))
        if saved.get("model") != recipe.model.model_dump(mode="json"):
            raise LLMCycleError(f"{run.path} was run with model {saved.get('model', {}).get('source')}; "
                                "resume it with the same recipe, or start a new run")
    except BaseException:
        lock.release()
        raise
    return run, lock


def _lock(run: RunDir) -> FolderLock:
    """``run``'s lock, taken; refused naming the holder. The folder is then the holder's: nothing is removed
    (another process may have created it a moment before this one)."""
    try:
        return FolderLock(run.path).acquire()
    except FolderLocked:
        raise
    except BaseException:
        run.remove_if_created()
        raise


class _Data:
    """The recipe's data, loaded once for all the stages that read it."""

    def __init__(self, recipe: Recipe, progress: Callable[[str], None]) -> None:
        self.recipe, self.progress, self.value = recipe, progress, None

    def get(self) -> Any:
        if self.value is None:
            self.progress(f"loading data {self.recipe.data.source}")
            self.value = load_data_from_config(self.recipe.data)
        return self.value


def run_recipe(recipe: Recipe, run_dir: str | Path | None = None, only: str | None = None,
               from_stage: str | None = None, progress: Callable[[str], None] | None = None) -> RunDir:
    """Run ``recipe``; resume ``run_dir`` when given (finished stages with the same config are skipped).

    The whole chain is planned (and refused, naming both stages, when a stage cannot start from what it
    receives) before the run directory is touched. A ``run_dir`` that does not exist yet, or is empty,
    starts a new run there.
    """
    say = progress or (lambda m: log.info(m))
    selected = set(select_stages(recipe, only, from_stage))
    recipe.register_templates()
    plan_recipe(recipe, Path(run_dir or recipe.runs_dir) / "(plan)")  # a chain that cannot work fails here
    run, lock = open_run(recipe, run_dir)
    try:
        return _run(recipe, run, selected, say)
    except KeyboardInterrupt:
        _interrupted.append(run.path)
        raise
    finally:
        if lock is not None:
            lock.release()


def _run(recipe: Recipe, run: RunDir, selected: set[int], say: Callable[[str], None]) -> RunDir:
    """The stages of ``recipe`` in the open, locked ``run``."""
    _, main = _world()
    steps = plan_recipe(recipe, run.path)
    if main:
        atomic_write_json(run.file("recipe.json"), recipe.model_dump(mode="json"))
        atomic_write_json(run.file("environment.json"), environment())
    data = _Data(recipe, say)
    loaded: Any = None  # the model the last stage left in memory ...
    loaded_for: ModelHandoff | None = None  # ... and which hand-off it is
    made: list[str] = []  # config hashes of the stages that handed on a model so far
    unpushed: list[LLMCycleError] = []  # pushes that failed: the run goes on, and fails with the first at the end
    for step in steps:
        name = step.name
        h = config_hash({"stage": _settings(step), "model": recipe.model, "data": recipe.data, "upstream": made})
        if step.hands_on_new:
            made = [*made, h]
        if step.index not in selected or run.stage_done(name, h):
            if step.index in selected:
                say(f"[{name}] already done with this config: skipped")
                if main and _pushes_here(step):  # e.g. resumed after a push that failed
                    _push(step, run.path, say, unpushed)
            if step.hands_on_new:
                loaded, loaded_for = None, None
            continue
        if main:
            moved = run.begin_stage(name, h)
            if moved is not None:
                say(f"[{name}] config changed: the earlier output was moved to {moved.name}")
        say(f"[{name}] running" + (f" on {step.incoming.describe()}" if step.incoming.produced else ""))
        ctx = StageContext(recipe.model, recipe.data, step.incoming, _history(recipe, steps, step), name, run.path, say,
                           loaded=loaded if loaded_for == step.incoming else None, data_loader=data.get)
        t0 = time.perf_counter()
        folder = run.file(name)
        folder.mkdir(parents=True, exist_ok=True)
        # the runner pushes a handed-on model itself, after its card below; the stage only saves it
        cfg = step.cfg.model_copy(update={"hub": step.cfg.hub.model_copy(update={"push": False})}) \
            if _pushes_here(step) else step.cfg
        try:
            _check_templates(step, steps, ctx, say)
            out = step.stage.run(ctx, cfg, folder)
        except LLMCycleError as exc:
            if main and run.new and not run.any_done() and not _has_files(folder):
                run.remove_if_created()  # refused before any work: leave nothing behind
                raise LLMCycleError(f"stage {name} failed: {exc}") from exc
            raise LLMCycleError(f"stage {name} failed: {exc}. Earlier stages are kept in {run.path}; fix the "
                                f"cause and resume with: llmcycle run --run-dir {run.path}") from exc
        out = out if isinstance(out, StageOutput) else StageOutput(out)
        if main:
            atomic_write_text(run.file(name, "section.md"), out.section)
            if step.hands_on_new:
                _write_card(step, recipe, out.section)
            run.mark_done(name, h, {"seconds": round(time.perf_counter() - t0, 2)})
            if _pushes_here(step):  # after mark_done: a push that fails is retried by resuming, without the work
                _push(step, run.path, say, unpushed)
        say(f"[{name}] done in {time.perf_counter() - t0:.1f}s")
        if step.hands_on_new:
            loaded, loaded_for = out.loaded, step.handoff if out.loaded is not None else None
            if loaded is not None:
                loaded.origin = step.handoff.source  # what loads these weights again (an adapter's base)
            say(f"[{name}] hands on {step.handoff.describe()}")
        else:
            loaded, loaded_for = (ctx._loaded, step.incoming) if ctx.has_loaded_model else (loaded, loaded_for)
    if main:
        write_run_report(run.path, recipe, steps)
    if unpushed:  # everything is saved and reported; the command still fails, naming the option
        raise unpushed[0]
    return run


def _check_templates(step: Step, steps: list[Step], ctx: StageContext, say: Callable[[str], None]) -> None:
    """Before a ``tune`` stage trains: the template contract with every later stage that prompts its model
    (``llmcycle.recipe.template_check``); a mismatch fails before training, naming both renderings."""
    pairs = [p for p in recipe_pairs(steps) if p[0] is step]
    if not pairs:
        return
    data = ctx.data
    rows = data["train"] if "train" in data else data[next(iter(data))]
    problems = check_recipe(ctx.model, rows, steps, only=step)
    if problems:
        raise ConfigError("template check failed (the model would be trained on other prompt tokens than it is "
                          "evaluated or served with): " + "; ".join(problems))
    say(f"[{step.name}] template check: {', '.join(p[1].name for p in pairs)} prompt with the tokens it trains on")


def _write_card(step: Step, recipe: Recipe, section: str) -> None:
    """The model card of the model ``step`` handed on (``README.md`` in its folder): base, stage, method, data,
    the stage's report section as its results, the stage's settings."""
    handoff = step.handoff
    folder = Path(handoff.source)
    if not folder.is_dir():
        return
    base = step.incoming.source if step.incoming.form != "adapter" or not step.incoming.adapter else \
        f"{step.incoming.source} + {step.incoming.adapter}"
    write_model_card(folder, name=handoff.label, base=base, what=handoff.what, stage=step.name,
                     method=getattr(step.cfg, "method", None) or handoff.label, data=recipe.data.source,
                     results=section, settings=_settings(step), adapter=handoff.form == "adapter",
                     repo_id=step.cfg.hub.repo_id if _pushes_here(step) else None)


def _settings(step: Step) -> dict[str, Any]:
    """The stage's settings that make its output (its ``hub`` block, where to publish it, is not one of them:
    changing it re-runs nothing)."""
    return step.cfg.model_dump(mode="json", exclude={"hub"})


def _pushes_here(step: Step) -> bool:
    """Whether the runner pushes what ``step`` hands on (its ``hub.push``); a stage that hands on no new model
    pushes what it saved itself (``align`` with ``hand_on: false``, ``optimize`` without ``hand_on``)."""
    hub = getattr(step.cfg, "hub", None)
    return bool(hub is not None and hub.push and step.hands_on_new)


def _push(step: Step, run_path: Path, say: Callable[[str], None], failed: list[LLMCycleError]) -> None:
    """Push the model ``step`` handed on, with its card, as its ``hub`` block says; a failure is said and added
    to ``failed`` (the stages after it still run on the saved model)."""
    try:
        url = push_folder(step.handoff.source, step.cfg.hub, where=f"{step.kind}.hub")
    except LLMCycleError as exc:
        say(f"[{step.name}] not pushed: {exc}")
        error = LLMCycleError(f"stage {step.name}: {exc} (or resume with: llmcycle run --run-dir {run_path})")
        error.__cause__ = exc  # --debug shows the Hub client's own error
        failed.append(error)
        return
    say(f"[{step.name}] pushed {step.handoff.label} to {url}")


def _has_files(folder: Path) -> bool:
    """Whether ``folder`` holds any file (at any depth)."""
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def _history(recipe: Recipe, steps: list[Step], current: Step) -> list[ModelHandoff]:
    """The recipe's model and every model handed on before ``current``."""
    out = [ModelHandoff.from_recipe(recipe.model)]
    for s in steps[: current.index]:
        if s.hands_on_new:
            out.append(s.handoff)
    return out
