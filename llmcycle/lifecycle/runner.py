"""The recipe runner: executes stages in order into a run directory, resumably.

The runner only composes stage functions; each stage writes into ``<run>/<index>-<kind>/`` and
returns a Markdown section for ``report.md``. A stage that finished with the same config is
skipped on a re-run of the same directory (``--run-dir``), so an interrupted run resumes where it
stopped. A failing stage leaves the earlier ones intact and the error says how to resume.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llmcycle.errors import LLMCycleError
from llmcycle.lifecycle.recipe import Recipe
from llmcycle.lifecycle.rundir import RunDir, atomic_write_json, atomic_write_text, config_hash

log = logging.getLogger("llmcycle")


@dataclass
class RunContext:
    """What stages share: the recipe, the run directory and the lazily loaded model and data."""

    recipe: Recipe
    run: RunDir
    tuned_dir: Path | None = None  # set once a tune (or handing-on align) stage has produced a model or adapter
    tuned: list[tuple[str, Path]] = field(default_factory=list)  # (label, model dir) of each such stage so far
    _model: Any = None
    _data: Any = None
    progress: Callable[[str], None] = field(default=lambda msg: log.info(msg))

    @property
    def model(self) -> Any:
        """The current model: the latest tune stage's output, or the recipe's model."""
        if self._model is None:
            from llmcycle.models import load_model

            m = self.recipe.model
            if self.tuned_dir is not None:  # a finished tune stage: continue from what it saved
                self.progress(f"loading the tuned model from {self.tuned_dir}")
                self._model = load_model(str(self.tuned_dir), dtype=m.dtype, device=m.device)
            else:
                self.progress(f"loading model {m.source}")
                self._model = load_model(m.source, weights=m.weights, dtype=m.dtype, device=m.device,
                                         revision=m.revision, adapter=m.adapter)
        return self._model

    def add_tuned(self, method: str, path: Path, prefix: str = "tuned") -> None:
        """Record a stage's model under a label unique in this run (tuned-lora, tuned-lora-2, aligned-ppo, ...);
        later stages continue from it."""
        label = f"{prefix}-{method}"
        taken = {lab for lab, _ in self.tuned}
        n = 2
        while label in taken:
            label, n = f"{prefix}-{method}-{n}", n + 1
        self.tuned.append((label, path))
        self.tuned_dir = path

    @property
    def data(self) -> Any:
        if self._data is None:
            from llmcycle.data import load_data_from_config

            self.progress(f"loading data {self.recipe.data.source}")
            self._data = load_data_from_config(self.recipe.data)
        return self._data


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


def _select(recipe: Recipe, only: str | None, from_stage: str | None) -> list[int]:
    kinds = [k for k, _ in recipe.stage_configs()]
    for name in (only, from_stage):
        if name is not None and name not in kinds:
            raise LLMCycleError(f"stage {name!r} is not in this recipe; its stages: {', '.join(kinds)}")
    if only:
        return [i for i, k in enumerate(kinds) if k == only]
    start = kinds.index(from_stage) if from_stage else 0
    return list(range(start, len(kinds)))


def run_recipe(recipe: Recipe, run_dir: str | Path | None = None, only: str | None = None,
               from_stage: str | None = None, progress: Callable[[str], None] | None = None) -> RunDir:
    """Run ``recipe``; resume ``run_dir`` when given (finished stages with the same config are skipped).

    A ``run_dir`` that does not exist yet, or is empty, starts a new run there.
    """
    from llmcycle.lifecycle.stages import STAGES

    fresh = run_dir is not None and (not Path(run_dir).exists() or (Path(run_dir).is_dir()
                                                                     and not any(Path(run_dir).iterdir())))
    if fresh:  # a --run-dir that does not exist yet (or is empty) starts a new run there
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        run = RunDir(Path(run_dir))
    else:
        run = RunDir.resume(run_dir) if run_dir else RunDir.create(recipe.runs_dir, recipe.name)
    if run_dir and not fresh:
        saved = json.loads(run.file("recipe.json").read_text(encoding="utf-8"))
        if saved.get("model") != recipe.model.model_dump(mode="json"):
            raise LLMCycleError(f"{run.path} was run with model {saved.get('model', {}).get('source')}; "
                                "resume it with the same recipe, or start a new run")
    atomic_write_json(run.file("recipe.json"), recipe.model_dump(mode="json"))
    atomic_write_json(run.file("environment.json"), environment())
    ctx = RunContext(recipe, run, progress=progress or (lambda m: log.info(m)))
    selected = set(_select(recipe, only, from_stage))
    upstream: list[str] = []  # the tune stages so far: a stage after a changed tune stage runs again
    for i, (kind, cfg) in enumerate(recipe.stage_configs()):
        name = f"{i + 1:02d}-{kind}"
        h = config_hash({"stage": cfg, "model": recipe.model, "data": recipe.data, "upstream": upstream})
        if kind == "tune" or (kind == "align" and cfg.hand_on):
            upstream = [*upstream, h]
        if i not in selected or run.stage_done(name, h):
            if i in selected:
                ctx.progress(f"[{name}] already done with this config: skipped")
            _hand_on(ctx, kind, cfg, run, name)
            continue
        moved = run.begin_stage(name, h)
        if moved is not None:
            ctx.progress(f"[{name}] config changed: the earlier output was moved to {moved.name}")
        ctx.progress(f"[{name}] running")
        t0 = time.perf_counter()
        try:
            section = STAGES[kind](ctx, cfg, run.file(name))
        except LLMCycleError as exc:
            raise LLMCycleError(f"stage {name} failed: {exc}. Earlier stages are kept in {run.path}; fix the "
                                f"cause and resume with: llmcycle run --run-dir {run.path}") from exc
        atomic_write_text(run.file(name, "section.md"), section)
        run.mark_done(name, h, {"seconds": round(time.perf_counter() - t0, 2)})
        ctx.progress(f"[{name}] done in {time.perf_counter() - t0:.1f}s")
        if kind == "align" and _hand_on(ctx, kind, cfg, run, name):
            ctx.progress(f"[{name}] later stages use the aligned model {ctx.tuned_dir}")
    write_report(run, recipe)
    return run


def _hand_on(ctx: RunContext, kind: str, cfg: Any, run: RunDir, name: str) -> bool:
    """After a tune stage, or an align stage with ``hand_on``, later stages continue from its model."""
    if kind == "tune":
        path, prefix = run.file(name, "tune", "model"), "tuned"
    elif kind == "align" and cfg.hand_on:
        seed = cfg.hand_on_seed if cfg.hand_on_seed is not None else cfg.seeds[0]
        path, prefix = run.file(name, "align", f"seed-{seed}", "model"), "aligned"
    else:
        return False
    if not path.is_dir():
        return False
    ctx.add_tuned(cfg.method, path, prefix)
    ctx._model = None
    return True


def write_report(run: RunDir, recipe: Recipe) -> Path:
    """``report.md`` and a self-contained ``report.html``: what was run, then each finished stage's
    section, in recipe order (image paths in sections are relative to the run directory)."""
    env = json.loads(run.file("environment.json").read_text(encoding="utf-8"))
    parts = [f"# llmcycle run: {recipe.name}\n",
             f"- model: `{recipe.model.source}` (weights: {recipe.model.weights}, dtype: {recipe.model.dtype})",
             f"- data: `{recipe.data.source}`" + (f", split `{recipe.data.split}`" if recipe.data.split else ""),
             f"- run directory: `{run.path}`",
             f"- torch {env['versions'].get('torch')}, transformers {env['versions'].get('transformers')}, "
             f"python {env['python']}\n"]
    from llmcycle.lifecycle.summary import summary_section

    done = [(f"{i + 1:02d}-{k}", k) for i, (k, _) in enumerate(recipe.stage_configs())
            if run.file(f"{i + 1:02d}-{k}", "section.md").is_file()]
    parts.append(summary_section(run.path, done))
    for i, (kind, _) in enumerate(recipe.stage_configs()):
        section = run.file(f"{i + 1:02d}-{kind}", "section.md")
        if section.is_file():
            parts.append(section.read_text(encoding="utf-8"))
        else:
            parts.append(f"## {kind}\n\n(not run)\n")
    from llmcycle.lifecycle.report import write_report as write_files

    return write_files(run.path, "\n".join(parts), title=f"llmcycle: {recipe.name}")
