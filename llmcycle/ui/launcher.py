"""The launcher: a recipe checked whole, then run by ``llmcycle run`` in a process of its own.

``check_recipe`` does what ``llmcycle plan`` does (every field of every stage, overrides applied, then
the model chain planned) and returns the plan's rows, so the page shows exactly what will run before
anything starts. ``Launcher.start`` runs ``python -m llmcycle.cli run RECIPE --run-dir DIR --set ...``
as a child process in a session of its own: the UI stays responsive while it works, survives it
failing (or being killed) and can cancel it (SIGINT to its process group, as Ctrl-C: the runner stops,
releases the run's lock and says how to resume; SIGKILL if it has not stopped after ``CANCEL_GRACE_S``).
Progress is read from the run directory (the stage markers, ``llmcycle.ui.runs``) and the child's log,
written under ``<runs>/.llmcycle-ui/`` beside an uploaded recipe's YAML: the only files the UI itself
writes, and only when asked to start something. ``resume`` runs ``llmcycle run --run-dir DIR`` on an
interrupted run (its own ``recipe.json``; finished stages are skipped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.core.files import atomic_write_text
from llmcycle.recipe.plan import plan_recipe, plan_rows, plan_text
from llmcycle.recipe.recipe import Recipe, apply_overrides, builtin_recipes, load_recipe
from llmcycle.ui.runs import UI_FOLDER, RunNotFound, read_run, run_path

CANCEL_GRACE_S = 20.0
MAX_RECIPE_BYTES = 1_000_000
LOG_TAIL_LINES = 40


@dataclass
class Checked:
    """A recipe that validated and planned: what the page shows before starting it."""

    recipe: Recipe
    source: str  # a shipped recipe name, or "uploaded YAML"
    overrides: list[str]
    yaml_text: str | None
    plan: dict[str, Any]


def _overrides(values: Any) -> list[str]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError("overrides: a list of 'field=value' strings")
    out = [v.strip() for v in values if v.strip()]
    for v in out:
        if "=" not in v or not v.split("=", 1)[0].strip():
            raise ConfigError(f"override {v!r}: expected field=value, e.g. model.source=builtin:tiny-t5")
    return out


def check_recipe(recipe: str | None, yaml_text: str | None, overrides: Any, runs_dir: str | Path) -> Checked:
    """Validate and plan a shipped recipe (by name) or an uploaded YAML text, with ``--set`` overrides."""
    sets = _overrides(overrides)
    if (recipe is None) == (yaml_text is None):
        raise ConfigError("recipe: choose a shipped recipe or upload a YAML file (one of them)")
    if yaml_text is not None:
        if len(yaml_text.encode("utf-8")) > MAX_RECIPE_BYTES:
            raise ConfigError(f"uploaded recipe: larger than {MAX_RECIPE_BYTES:,} bytes")
        try:
            data = yaml.safe_load(yaml_text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise ConfigError(f"uploaded recipe: not valid YAML{where}: "
                              f"{getattr(exc, 'problem', None) or 'parse error'}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"uploaded recipe: the top level must be a mapping of field: value (name, model, "
                              f"data, stages), got {type(data).__name__}")
        rec = Recipe.from_dict(apply_overrides(data, sets), where="uploaded recipe")
        source = "uploaded YAML"
    else:
        if recipe not in builtin_recipes():
            raise ConfigError(f"recipe {recipe!r}: not a shipped recipe; shipped: {', '.join(builtin_recipes())} "
                              "(or upload a YAML file)")
        rec = load_recipe(recipe, sets)
        source = recipe
    steps = plan_recipe(rec, Path(runs_dir) / f"{rec.name}-<timestamp>")
    rows = plan_rows(rec, steps)
    plan = {"text": plan_text(rec, steps, source), "columns": ["stage", "receives", "hands on", "notes", "writes"],
            "rows": rows, "stages": [s.name for s in steps], "name": rec.name}
    return Checked(rec, source, sets, yaml_text, plan)


@dataclass
class Job:
    """One ``llmcycle run`` child process the UI started."""

    run: str  # the run directory's name
    path: Path
    log: Path
    command: list[str]
    process: subprocess.Popen
    planned: list[str] = field(default_factory=list)  # its stages' folder names, shown before the run has any
    started: float = field(default_factory=time.time)
    cancelled: bool = False

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    @property
    def state(self) -> str:
        code = self.returncode
        if code is None:
            return "cancelling" if self.cancelled else "running"
        if self.cancelled:
            return "cancelled"
        return "done" if code == 0 else "failed"


class Launcher:
    """Starts, watches and cancels ``llmcycle run`` processes for one runs directory."""

    def __init__(self, runs_dir: str | Path, python: str | None = None):
        self.runs_dir = Path(runs_dir)
        self.python = python or sys.executable
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    # ---- starting ---------------------------------------------------------------------------------------------

    def start(self, checked: Checked) -> Job:
        """Run a checked recipe in a new run directory ``<runs>/<name>-<timestamp>``."""
        ui = self._ui_folder()
        with self._lock:
            name = self._new_name(checked.recipe.name)
            path = self.runs_dir / name
            if checked.yaml_text is not None:
                recipe_arg = str(atomic_write_text(ui / f"{name}.yaml", checked.yaml_text))
            else:
                recipe_arg = checked.source
            cmd = [self.python, "-m", "llmcycle.cli", "run", recipe_arg, "--run-dir", str(path)]
            for item in checked.overrides:
                cmd += ["--set", item]
            return self._spawn(name, path, cmd, checked.plan["stages"])

    def resume(self, name: str) -> Job:
        """Run an interrupted run again in its own directory (finished stages are skipped)."""
        path = run_path(self.runs_dir, name)
        with self._lock:
            job = self.jobs.get(name)
            if job is not None and job.returncode is None:
                raise LLMCycleError(f"run {name} is running (started from this page); wait for it or cancel it")
            info = read_run(path)
            if info.status == "running":
                raise LLMCycleError(f"run {name} is {info.note}; wait for it to finish or stop it")
            if info.status == "unreadable":
                raise LLMCycleError(f"run {name}: {info.note}")
            if info.status == "done":
                raise LLMCycleError(f"run {name} has finished: every stage is done; start a new run instead")
            return self._spawn(name, path, [self.python, "-m", "llmcycle.cli", "run", "--run-dir", str(path)],
                               [s.name for s in info.stages])

    def _ui_folder(self) -> Path:
        if self.runs_dir.exists() and not self.runs_dir.is_dir():
            raise LLMCycleError(f"runs directory {self.runs_dir} is a file, not a folder")
        ui = self.runs_dir / UI_FOLDER
        ui.mkdir(parents=True, exist_ok=True)
        return ui

    def _new_name(self, recipe_name: str) -> str:
        """``<name>-<UTC timestamp>`` (the runner's own pattern), with a suffix if taken."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        for i in range(100):
            name = f"{recipe_name}-{stamp}" + (f"-{i}" if i else "")
            if not (self.runs_dir / name).exists() and name not in self.jobs:
                return name
        raise LLMCycleError(f"cannot find a free run directory name for {recipe_name} in {self.runs_dir}")

    def _spawn(self, name: str, path: Path, cmd: list[str], planned: list[str]) -> Job:
        log = self._ui_folder() / f"{name}.log"
        env = os.environ | {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            # a session of its own: the UI's Ctrl-C does not reach it, and cancel signals its whole group
            process = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                       start_new_session=True)
        job = Job(name, path, log, cmd, process, planned)
        self.jobs[name] = job
        return job

    # ---- watching and cancelling ------------------------------------------------------------------------------

    def job(self, name: str) -> Job:
        job = self.jobs.get(name)
        if job is None:
            raise RunNotFound(f"no run {name!r} was started from this page")
        return job

    def cancel(self, name: str) -> Job:
        """Stop a running job: SIGINT to its process group now, SIGKILL after ``CANCEL_GRACE_S``."""
        job = self.job(name)
        if job.returncode is not None:
            raise LLMCycleError(f"run {name} is not running ({job.state})")
        job.cancelled = True
        _signal_group(job.process, signal.SIGINT)
        threading.Thread(target=_kill_later, args=(job.process, CANCEL_GRACE_S), daemon=True,
                         name=f"llmcycle-ui-cancel-{name}").start()
        return job

    def status(self, name: str) -> dict[str, Any]:
        """A job's state, its stages' progress (from the run directory) and the tail of its log."""
        job = self.job(name)
        state = job.state  # poll first: the stage markers below are then at least as new as the exit
        info = read_run(job.path) if (job.path / "recipe.json").is_file() else None
        ended = state not in ("running", "cancelling")
        stages = info.to_dict()["stages"] if info is not None else [  # no run directory (yet, or left behind)
            {"name": n, "kind": n.split("-", 1)[-1], "state": "not run" if ended else "pending", "seconds": None}
            for n in job.planned]
        if info is not None and ended:
            for s in stages:
                if s["state"] == "running":
                    s["state"] = "stopped"
        tail = log_tail(job.log)
        error = _last_error(tail) if state == "failed" else None
        return {"run": job.run, "state": state, "returncode": job.returncode, "stages": stages,
                "log": tail, "error": error, "command": " ".join(job.command),
                "seconds": round(time.time() - job.started, 1),
                "resumable": state in ("failed", "cancelled") and info is not None and info.status != "done"}

    def running(self) -> list[str]:
        return [n for n, j in self.jobs.items() if j.returncode is None]


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _kill_later(process: subprocess.Popen, grace_s: float) -> None:
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, max_bytes: int = 64_000) -> list[str]:
    """The last ``lines`` lines of a log (progress bars' carriage returns folded: the last state of a line)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    out = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return [line for line in out if line.strip()][-lines:]


def _last_error(tail: list[str]) -> str | None:
    """The CLI's one-line error (``error: ...``) from a failed run's log, else its last line."""
    for line in reversed(tail):
        if line.lower().startswith(("error", "llmcycle: error")):
            return line
    return tail[-1] if tail else None
