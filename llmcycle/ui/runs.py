"""The runs directory as the UI shows it: read only, through the recipe and the stage registry.

Each run directory (``<runs>/<name>-<timestamp>/``, see ``llmcycle.recipe.rundir``) is read from what
the runner wrote: ``recipe.json`` (validated with this version's ``Recipe``, then planned, so each
stage's folder, config and hand-off are the runner's own), the stage markers in ``stages/`` (which
stages started and finished), the run's lock (whether a process is writing it now) and each finished
stage's results through its ``Stage.glance`` (the rows of the report's first section). Curves are
found by shape, not by stage kind: any list of ``[x, y]`` number pairs in a stage's JSON results
(tune's losses, align's reward and KL per step) is a curve, named by its stage and path.

Nothing here writes: looking at a run never changes it. A run written by another version, whose
``recipe.json`` this version cannot validate or plan, is listed as ``unreadable`` with the reason;
file paths are confined to their run directory (``..``, absolute paths and links that lead out are
refused).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from llmcycle.core.errors import LLMCycleError
from llmcycle.core.lock import LOCK_NAME, describe_holder, stale_reason
from llmcycle.recipe.plan import Step, plan_recipe
from llmcycle.recipe.recipe import Recipe
from llmcycle.recipe.report import MODEL_COLUMNS
from llmcycle.report.html import render_html
from llmcycle.stages import ModelHandoff

log = logging.getLogger("llmcycle.ui")

RUN_NAME = re.compile(r"^[\w][\w.\-]*$")
UI_FOLDER = ".llmcycle-ui"  # the UI's own files in a runs directory (launch logs, uploaded recipes)
MAX_CURVE_FILE = 4_000_000  # bytes: larger JSON files are not searched for curves
MAX_FILES = 2000  # entries listed per run


class RunNotFound(LLMCycleError):
    """No run of that name in the runs directory (the UI answers 404)."""


@dataclass
class StageState:
    """One stage of a run: its folder name, kind and state (done, running, stopped, pending)."""

    name: str
    kind: str
    state: str
    seconds: float | None = None


@dataclass
class RunInfo:
    """One run as the runs table shows it."""

    name: str
    path: Path
    status: str  # done, running, interrupted, incomplete, unreadable
    note: str = ""
    model: str = "?"
    data: str = "?"
    recipe_name: str = "?"
    stages: list[StageState] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)
    when: str = ""
    llmcycle_version: str | None = None
    has_report: bool = False
    recipe: Recipe | None = None
    steps: list[Step] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "note": self.note, "model": self.model, "data": self.data,
                "recipe": self.recipe_name, "when": self.when, "llmcycle_version": self.llmcycle_version,
                "has_report": self.has_report, "metrics": self.metrics,
                "stages": [{"name": s.name, "kind": s.kind, "state": s.state, "seconds": s.seconds}
                           for s in self.stages],
                "done": sum(s.state == "done" for s in self.stages), "total": len(self.stages),
                "resumable": self.status in ("interrupted", "incomplete")}


def run_dirs(runs_dir: str | Path) -> list[Path]:
    """The run directories under ``runs_dir`` (folders holding ``recipe.json``), newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "recipe.json").is_file()]
    return sorted(found, key=lambda p: (_mtime(p / "recipe.json"), p.name), reverse=True)


def run_path(runs_dir: str | Path, name: str) -> Path:
    """The run directory ``name`` (one folder name, no path) under ``runs_dir``; ``RunNotFound`` otherwise."""
    if not isinstance(name, str) or not RUN_NAME.match(name) or name in (".", ".."):
        raise RunNotFound(f"no run {name!r}: a run is named by its folder in the runs directory "
                          "(letters, digits, '_', '.', '-')")
    path = Path(runs_dir) / name
    if not (path / "recipe.json").is_file():
        raise RunNotFound(f"no run {name!r} in {runs_dir} (no folder with a recipe.json of that name)")
    return path


def read_run(path: Path) -> RunInfo:
    """What a run directory holds: its recipe, stage states, status and key metrics (never raises for a bad run:
    a run this version cannot read is ``unreadable`` with the reason)."""
    info = RunInfo(name=path.name, path=path, status="incomplete", when=_when(path / "recipe.json"),
                   has_report=(path / "report.html").is_file())
    env = _json(path / "environment.json")
    if isinstance(env, dict) and isinstance(env.get("versions"), dict):
        info.llmcycle_version = env["versions"].get("llmcycle")
    raw = _json(path / "recipe.json")
    if isinstance(raw, dict):
        info.recipe_name = str(raw.get("name", "?"))
        if isinstance(raw.get("model"), dict):
            info.model = str(raw["model"].get("source", "?"))
        if isinstance(raw.get("data"), dict):
            info.data = str(raw["data"].get("source", "?"))
    holder = _lock_holder(path)
    try:
        if not isinstance(raw, dict):
            raise LLMCycleError("recipe.json is not a JSON mapping")
        recipe = Recipe.from_dict(raw, where="recipe.json")
        steps = plan_recipe(recipe, path)
    except (LLMCycleError, TypeError, KeyError) as exc:  # LLMCycleError is a ValueError
        version = f" (written by llmcycle {info.llmcycle_version})" if info.llmcycle_version else ""
        info.status = "unreadable"
        info.note = (f"this version of llmcycle cannot read this run{version}: {exc}. Its files can still be "
                     "opened and downloaded; it cannot be compared or resumed here.")
        info.stages = _marker_states(path, holder is not None)
        return info
    info.recipe, info.steps = recipe, steps
    info.stages = [_stage_state(path, s.name, s.kind, holder is not None) for s in steps]
    info.metrics = key_metrics(info)
    if holder is not None:
        info.status, info.note = "running", f"being written by {holder}"
    elif all(s.state == "done" for s in info.stages) and info.has_report:
        info.status = "done"
    elif any(s.state == "stopped" for s in info.stages):
        stopped = next(s.name for s in info.stages if s.state == "stopped")
        info.status, info.note = "interrupted", f"stage {stopped} started but did not finish; resume it"
    else:
        pending = [s.name for s in info.stages if s.state != "done"]
        info.note = f"not run yet: {', '.join(pending)}" if pending else "no report yet"
    return info


def list_runs(runs_dir: str | Path) -> list[RunInfo]:
    """Every run under ``runs_dir``, newest first."""
    return [read_run(p) for p in run_dirs(runs_dir)]


def _stage_state(path: Path, name: str, kind: str, running: bool) -> StageState:
    done = _json(path / "stages" / f"{name}.done.json")
    if isinstance(done, dict):
        summary = done.get("summary") if isinstance(done.get("summary"), dict) else {}
        seconds = summary.get("seconds")
        return StageState(name, kind, "done", seconds if isinstance(seconds, (int, float)) else None)
    if (path / "stages" / f"{name}.started.json").is_file():
        return StageState(name, kind, "running" if running else "stopped")
    return StageState(name, kind, "pending")


def _marker_states(path: Path, running: bool) -> list[StageState]:
    """Stage states from the markers alone (a run whose recipe cannot be read)."""
    names = sorted({p.name.split(".")[0] for p in (path / "stages").glob("*.json")}) if (path / "stages").is_dir() \
        else []
    return [_stage_state(path, n, n.split("-", 1)[-1], running) for n in names]


def _lock_holder(path: Path) -> str | None:
    """Who is writing the run now (described), or None when no live process holds its lock."""
    holder = _json(path / LOCK_NAME)
    if not isinstance(holder, dict) or stale_reason(holder) is not None:
        return None
    return describe_holder(holder)


def stage_labels(kinds: list[str]) -> list[str]:
    """How runs are lined up for comparison: a stage by its kind, the second of a kind as ``tune[1]`` (as ``--set``
    names them), so the tune stage of one recipe meets the tune stage of another whatever their positions."""
    seen: dict[str, int] = {}
    out = []
    for kind in kinds:
        n = seen.get(kind, 0)
        seen[kind] = n + 1
        out.append(kind if n == 0 else f"{kind}[{n}]")
    return out


def key_metrics(info: RunInfo) -> dict[str, str]:
    """The figures of the report's first section, keyed ``<stage> <model> <column>`` (ROUGE-1, change, toxicity,
    size, speed) and ``<stage> <what>`` (estimates and measurements), read by each finished stage's ``glance``;
    ``<stage>`` as ``stage_labels`` names it."""
    out: dict[str, str] = {}
    for label, step in zip(stage_labels([s.kind for s in info.steps]), info.steps):
        folder = info.path / step.name
        if not (folder / "section.md").is_file():
            continue
        try:
            g = step.stage.glance(folder, step.cfg)
        except Exception as exc:  # results written by another version: shown as missing, never a failure
            log.debug("glance of %s failed: %r", folder, exc)
            out[label] = "(results unreadable by this version)"
            continue
        for row in g.models:
            for column, value in zip(MODEL_COLUMNS[2:], row[2:]):
                if str(value).strip() not in ("", "-"):
                    out[f"{label} {row[0]} {column}"] = str(value)
        for row in g.figures:
            if len(row) >= 2:
                out[f"{label} {row[0]}"] = str(row[1])
    return out


def headline(metrics: dict[str, str], limit: int = 4) -> list[str]:
    """The few metrics the runs table shows: ROUGE-1 and toxicity per model first."""
    first = [f"{k.split(' ', 1)[1]}: {v}" for k, v in metrics.items() if k.endswith((" ROUGE-1", " toxicity"))]
    return first[:limit]


# ---- models a run made ---------------------------------------------------------------------------------------


def run_models(info: RunInfo) -> list[tuple[str, ModelHandoff]]:
    """``(label, hand-off)`` of every model a finished stage of the run handed on, in order (what the playground
    offers as ``run:<run>/<label>``)."""
    out: list[tuple[str, ModelHandoff]] = []
    for step, state in zip(info.steps, info.stages):
        if step.hands_on_new and state.state == "done" and Path(step.handoff.source).exists():
            out.append((step.handoff.label, step.handoff))
    return out


def find_model(runs_dir: str | Path, name: str, label: str) -> tuple[ModelHandoff, Any]:
    """The hand-off ``label`` of run ``name`` and the recipe's model config (how to load it)."""
    info = read_run(run_path(runs_dir, name))
    if info.recipe is None:
        raise LLMCycleError(f"run {name}: {info.note}")
    made = run_models(info)
    for have, handoff in made:
        if have == label:
            return handoff, info.recipe.model
    labels = ", ".join(label for label, _ in made) or "none: no stage of it that hands on a model has finished"
    raise LLMCycleError(f"run {name} has no model {label!r}; its models: {labels}")


# ---- files ----------------------------------------------------------------------------------------------------


def run_file(runs_dir: str | Path, name: str, relative: str) -> Path:
    """The file ``relative`` inside run ``name``; anything that would leave the run directory is refused."""
    root = run_path(runs_dir, name).resolve()
    rel = Path(relative)
    if not relative or rel.is_absolute() or ".." in rel.parts or "\\" in relative or "\x00" in relative:
        raise LLMCycleError(f"{relative!r}: a file is named by its path inside the run directory, without '..'")
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        raise LLMCycleError(f"{relative!r} leads outside the run directory (a link?); refused")
    if not target.is_file():
        raise RunNotFound(f"run {name} has no file {relative!r}")
    return target


def list_files(runs_dir: str | Path, name: str) -> list[dict[str, Any]]:
    """Every file of a run (path inside it, size in bytes), at most ``MAX_FILES``, links leading out left out."""
    root = run_path(runs_dir, name).resolve()
    out = []
    for p in sorted(root.rglob("*")):
        if len(out) >= MAX_FILES:
            break
        if p.name == LOCK_NAME or not p.is_file() or not p.resolve().is_relative_to(root):
            continue
        out.append({"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size})
    return out


def report_html(info: RunInfo) -> str:
    """The run's ``report.html``; for a run without one (running, interrupted), its finished stages' sections
    rendered the same way, in memory."""
    if info.has_report:
        return (info.path / "report.html").read_text(encoding="utf-8")
    sections = [f"# llmcycle run: {info.name} ({info.status})\n", f"{info.note}\n" if info.note else ""]
    for s in info.stages:
        md = info.path / s.name / "section.md"
        if md.is_file():
            sections.append(md.read_text(encoding="utf-8"))
        else:
            sections.append(f"## {s.name}\n\n({s.state})\n")
    return render_html("\n".join(sections), info.path, title=f"llmcycle: {info.name}")


# ---- comparing runs -------------------------------------------------------------------------------------------


def curves(info: RunInfo) -> dict[str, list[list[float]]]:
    """Every curve in the run's finished stages' JSON results: ``{"tune train_loss": [[step, value], ...]}`` (stages
    named as ``stage_labels`` names them)."""
    out: dict[str, list[list[float]]] = {}
    for label, s in zip(stage_labels([s.kind for s in info.stages]), info.stages):
        folder = info.path / s.name
        if s.state != "done" or not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.json")):
            if f.stat().st_size > MAX_CURVE_FILE:
                continue
            data = _json(f)
            if data is not None:
                _find_curves(data, label, out)
    return out


def _find_curves(value: Any, where: str, out: dict[str, list[list[float]]], depth: int = 0) -> None:
    if depth > 4:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _find_curves(v, f"{where}{' ' if depth == 0 else '.'}{k}", out, depth + 1)
    elif isinstance(value, list) and value:
        if all(_pair(p) for p in value):
            out[where] = [[float(x), float(y)] for x, y in value]
        elif len(value) <= 16:
            for i, v in enumerate(value):
                _find_curves(v, f"{where}[{i}]", out, depth + 1)


def _pair(p: Any) -> bool:
    return isinstance(p, (list, tuple)) and len(p) == 2 and all(
        isinstance(q, (int, float)) and not isinstance(q, bool) and math.isfinite(q) for q in p)


def compare_runs(runs_dir: str | Path, names: list[str]) -> dict[str, Any]:
    """Two or more runs side by side: every key metric (a row per metric, a column per run) and every curve
    (one chart per curve name, one line per run that has it)."""
    if len(names) < 2:
        raise LLMCycleError("pick two or more runs to compare")
    if len(set(names)) != len(names):
        raise LLMCycleError("each run can be compared once; a run was picked twice")
    infos = [read_run(run_path(runs_dir, n)) for n in names]
    bad = [i for i in infos if i.status == "unreadable"]
    if bad:
        raise LLMCycleError(f"run {bad[0].name}: {bad[0].note}")
    keys: list[str] = []
    for i in infos:
        keys += [k for k in i.metrics if k not in keys]
    metrics = [{"metric": k, "values": [i.metrics.get(k, "-") for i in infos]} for k in keys]
    found = [curves(i) for i in infos]
    names_in_order: list[str] = []
    for c in found:
        names_in_order += [k for k in c if k not in names_in_order]
    charts = [{"name": k, "series": [{"run": i.name, "points": c[k]} for i, c in zip(infos, found) if k in c]}
              for k in names_in_order]
    return {"runs": [i.to_dict() for i in infos], "metrics": metrics, "curves": charts}


# ---- helpers --------------------------------------------------------------------------------------------------


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _when(path: Path) -> str:
    t = _mtime(path)
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else ""
