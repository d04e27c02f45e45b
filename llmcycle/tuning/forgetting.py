"""Does tuning on one task make a model forget another, and does mixing the tasks prevent it?

``forgetting_check`` scores a held-out task before tuning, after single-task tuning and after
multitask tuning (``llmcycle.tuning.multitask.mix_tasks``), through the tuning engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcycle.core.files import atomic_write_json
from llmcycle.tuning.config import TuneConfig
from llmcycle.tuning.multitask import Task, mix_tasks, task_scores
from llmcycle.tuning.train import train


@dataclass
class ForgettingReport:
    """Scores of each task on the starting model, after single-task and after multitask tuning."""

    primary: str
    held_out: str
    scores: dict[str, dict[str, dict[str, float]]]  # stage -> task -> metric -> value
    mix: dict[str, Any] = field(default_factory=dict)

    def forgetting(self, metric: str = "loss") -> dict[str, float]:
        """Change of the held-out task's ``metric`` from the start, after each kind of tuning."""
        start = self.scores["start"][self.held_out][metric]
        return {stage: round(self.scores[stage][self.held_out][metric] - start, 5)
                for stage in ("single_task", "multitask")}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"held_out_loss_change": self.forgetting("loss")}


def forgetting_check(make_model: Callable[[], Any], primary: Task, held_out: Task, cfg: Any, out_dir: str | Path, *,
                     generate: bool = False) -> ForgettingReport:
    """Does tuning on ``primary`` make the model forget ``held_out``, and does mixing them prevent it?

    Args:
        make_model: returns a fresh ``LoadedModel`` of the starting point each call (e.g.
            ``lambda: load_model(path)``); called three times.
        primary: the task being tuned for.
        held_out: the task the starting model can already do.
        cfg: a ``TuneConfig`` (or its fields) for both tuning runs; its templates are ignored (tasks
            carry their own).
        out_dir: gets ``single_task/``, ``multitask/`` (tuning runs) and ``forgetting.json``.
        generate: also score ROUGE of generated outputs (slower).
    """
    cfg = cfg if isinstance(cfg, TuneConfig) else TuneConfig.from_dict(dict(cfg), where="tune")
    cfg = cfg.model_copy(update={"templates": ["none"]})
    out = Path(out_dir)
    tasks = (primary, held_out)
    shape = {"max_input_tokens": cfg.max_input_tokens, "max_target_tokens": cfg.max_target_tokens,
             "generate": generate}

    def score(loaded: Any) -> dict[str, dict[str, float]]:
        return {t.name: task_scores(loaded, t, **shape) for t in tasks}

    scores = {"start": score(make_model())}
    single = train(make_model(), (primary.render(), primary.render(primary.eval_rows) or None), cfg,
                   out / "single_task")
    scores["single_task"] = score(single.loaded)
    mixed, report = mix_tasks(tasks, size=len(primary.rows), seed=cfg.seed)
    multi = train(make_model(), (mixed, None), cfg, out / "multitask")
    scores["multitask"] = score(multi.loaded)
    result = ForgettingReport(primary.name, held_out.name, scores, asdict(report))
    atomic_write_json(out / "forgetting.json", result.to_dict())
    return result
