"""A recipe's stage chain worked out before any work: what each stage receives, hands on and writes.

``plan_recipe`` asks every stage, from its config alone, which model it starts from (``receives``),
whether it can (``check``) and what it hands on (``hand_on``). A chain that cannot work (tuning a
quantised model, optimising a prompt-tuning adapter) fails here, naming both stages, before the
first model loads. The runner follows the same plan; ``llmcycle plan`` prints it, with estimated
peak memory for the stages that train.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmcycle.core.config import StageConfig
from llmcycle.core.errors import ConfigError
from llmcycle.recipe.recipe import Recipe
from llmcycle.stages import ModelHandoff, Stage, get_stage


@dataclass(frozen=True)
class Step:
    """One stage of a planned run."""

    index: int
    kind: str
    stage: Stage
    cfg: StageConfig
    incoming: ModelHandoff
    handoff: ModelHandoff  # what the stages after it receive (``incoming`` when it hands on nothing new)

    @property
    def name(self) -> str:
        """The stage's folder in the run directory (``05-tune``)."""
        return folder_name(self.index, self.kind)

    @property
    def hands_on_new(self) -> bool:
        return self.handoff != self.incoming


def folder_name(index: int, kind: str) -> str:
    return f"{index + 1:02d}-{kind}"


def plan_recipe(recipe: Recipe, run_path: str | Path) -> list[Step]:
    """The chain of ``recipe`` run in ``run_path``; ``ConfigError`` when a stage cannot start from what it receives."""
    run_path = Path(run_path)
    base = ModelHandoff.from_recipe(recipe.model)
    history = [base]
    current = base
    steps: list[Step] = []
    for i, (kind, cfg) in enumerate(recipe.stage_configs()):
        stage = get_stage(kind)
        try:
            incoming = stage.receives(cfg, current, list(history))
        except ConfigError as exc:
            raise ConfigError(f"stages[{i}].{kind}: {exc}") from None
        why = stage.check(cfg, incoming)
        if why:
            raise ConfigError(f"stages[{i}].{kind} cannot start from {incoming.describe()}: {why}")
        handoff = stage.hand_on(cfg, incoming, run_path / folder_name(i, kind))
        if handoff != incoming:
            handoff = replace(handoff, label=_unique(handoff.label, history))
            history.append(handoff)
        steps.append(Step(i, kind, stage, cfg, incoming, handoff))
        current = handoff
    return steps


def _unique(label: str, history: list[ModelHandoff]) -> str:
    """``label``, or ``label-2``, ``label-3``... when an earlier model of this run has it."""
    taken = {h.label for h in history}
    out, n = label, 2
    while out in taken:
        out, n = f"{label}-{n}", n + 1
    return out


def plan_rows(recipe: Recipe, steps: list[Step]) -> list[list[str]]:
    """``[stage, receives, hands on, notes, writes]`` rows for ``llmcycle plan`` (nothing is loaded)."""
    rows = []
    for s in steps:
        notes: list[str] = s.stage.plan_notes(s.cfg, s.incoming, recipe.model)
        received = f"{s.incoming.label} ({s.incoming.what}" + (f", {s.incoming.stage})" if s.incoming.stage else ")")
        rows.append([s.name, received, f"{s.handoff.label} ({s.handoff.what})" if s.hands_on_new else "-",
                     "; ".join(notes), ", ".join(s.stage.writes(s.cfg))])
    return rows


def plan_text(recipe: Recipe, steps: list[Step], source: Any = None) -> str:
    """A short heading for the plan: the recipe, its model and data."""
    split = f", split {recipe.data.split}" if recipe.data.split else ""
    return (f"recipe {recipe.name}{f' ({source})' if source else ''}: model {recipe.model.source} "
            f"({recipe.model.weights}, {recipe.model.dtype}, {recipe.model.device}), data {recipe.data.source}{split}, "
            f"{len(steps)} stages")
