"""Stage ``evaluate``: several models on one split with one prompt and one generation settings block.

With no ``models`` listed, a recipe compares what it has made so far: the recipe's model against
each model an earlier stage handed on (``base`` vs ``tuned``, or ``base``, ``tuned-full``,
``tuned-lora``, ``aligned-ppo``, ...); before any such stage, the model it receives alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmcycle.core.errors import ConfigError, LLMCycleError
from llmcycle.evaluation.evaluate import EvaluateConfig, check_baseline, evaluate_models, parse_model_spec
from llmcycle.stages.base import BaseStage, Glance, ModelHandoff, StageContext, register_stage


def _ci(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def compared_models(ctx: StageContext) -> list[tuple[str, ModelHandoff]]:
    """(label, model) pairs the stage compares when the config lists none."""
    return compared(ctx.history, ctx.incoming)


def compared(history: list[ModelHandoff], incoming: ModelHandoff) -> list[tuple[str, ModelHandoff]]:
    """(label, model) pairs compared when the config lists none: the recipe's model and each model made so far."""
    made = [h for h in history if h.produced]
    if not made:
        return [(incoming.label, incoming)]
    base = history[0]
    if len(made) == 1:
        label = "tuned" if made[0].label.startswith("tuned") else made[0].label
        return [("base", base), (label, made[0])]
    return [("base", base)] + [(h.label, h) for h in made]


class Evaluate(BaseStage):
    kind = "evaluate"
    config_cls = EvaluateConfig
    title = "Evaluation"

    def receives(self, cfg: EvaluateConfig, current: ModelHandoff, history: list[ModelHandoff]) -> ModelHandoff:
        """The model it receives; an unknown ``baseline`` is refused here, before any work."""
        if cfg.baseline is not None:
            names = ([parse_model_spec(m).name for m in cfg.models] if cfg.models
                     else [label for label, _ in compared(history, current)])
            try:
                check_baseline(cfg.baseline, names)
            except LLMCycleError as exc:
                raise ConfigError(str(exc)) from None
        return current

    def writes(self, cfg: EvaluateConfig) -> list[str]:
        return ["predictions/<model>.jsonl", "metrics.json", "rouge.png", "section.md"]

    def run(self, ctx: StageContext, cfg: EvaluateConfig, out: Path) -> str:
        preloaded: dict[str, Any] = {}
        if not cfg.models:
            specs = []
            for label, handoff in compared_models(ctx):
                spec = f"{label}={handoff.source}"
                specs.append(spec)
                if handoff == ctx.incoming and ctx.has_loaded_model:
                    preloaded[spec] = ctx.model
                else:
                    preloaded[spec] = (lambda h=handoff: ctx.load(h))
            cfg = cfg.model_copy(update={"models": specs})
        return evaluate_models(cfg, ctx.eval_rows(), out, progress=ctx.progress, preloaded=preloaded).section

    def glance(self, folder: Path, cfg: EvaluateConfig) -> Glance:
        try:
            m = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        cmp = {(c["model"], c["metric"]): c for c in m.get("comparison", [])}
        rows = []
        for name, scores in m["models"].items():
            r1 = cmp.get((name, "rouge1"), {})
            delta, p = r1.get("delta_points"), r1.get("p_value")
            tox = scores.get("toxicity")
            rows.append([name, f"{folder.name} ({m['n_examples']} examples)",
                         _ci(scores.get("rouge1"), r1.get("ci_low"), r1.get("ci_high")),
                         "-" if delta is None else f"{delta:+.2f}" + (f" (p={p:.3f})" if p is not None else ""),
                         "-" if tox is None else f"{tox:.3f}", "-", "-"])
        return Glance(models=rows)


STAGE: Any = register_stage(Evaluate())
