"""Multitask mixing (the forgetting check that measures it is ``llmcycle.tuning.forgetting``).

Fine-tuning on one task can make a model forget another it could do (catastrophic forgetting).
Two remedies the course names: mix the tasks while tuning, or tune only a few parameters (PEFT).
This module makes both measurable:

- ``Task``: rows with ``input``/``references`` (or another field as the target, e.g. DialogSum's
  ``topic``), the prompt templates that phrase its instruction, and a mixing weight.
- ``mix_tasks(tasks, ...)``: one shuffled training set drawn from the tasks in proportion to their
  weights (seeded; a task smaller than its share is repeated), each row already rendered with its
  task's templates (row ``i`` of a task uses template ``i mod n``), so ``train`` takes it with the
  ``none`` template.
- ``task_scores(loaded, task)``: mean token loss of a task's evaluation rows and, optionally, ROUGE
  of generated outputs against their references.
- ``llmcycle.tuning.forgetting.forgetting_check(make_model, primary, held_out, cfg, out_dir)``:
  scores the held-out task on the starting model, after tuning on ``primary`` alone, and after
  tuning on the mix of both (same config and steps), and writes ``forgetting.json``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmcycle.core.errors import ConfigError, DataError
from llmcycle.evaluation.rouge import rouge
from llmcycle.generation import GenerationSettings
from llmcycle.generation import generate as run
from llmcycle.prompts import get_template
from llmcycle.tuning.data import PadCollator, build_dataset


@dataclass
class Task:
    """One task of a mix.

    Attributes:
        name: what reports call it.
        rows: training rows (``input`` and ``references``, or the fields the templates name).
        eval_rows: held-out rows scored by ``task_scores`` (may be empty).
        weight: share of the mix, relative to the other tasks' weights (> 0).
        templates: prompt template names (or ``PromptTemplate`` objects) phrasing the instruction.
        target_field: take the reference from this field instead of ``references`` (e.g. ``topic``).
    """

    name: str
    rows: Sequence[Mapping[str, Any]]
    eval_rows: Sequence[Mapping[str, Any]] = ()
    weight: float = 1.0
    templates: Sequence[Any] = ("none",)
    target_field: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("task name: give each task a name")
        if not self.weight > 0:
            raise ConfigError(f"task '{self.name}' weight: must be > 0, got {self.weight}")
        if not self.templates:
            raise ConfigError(f"task '{self.name}' templates: give at least one template")

    def render(self, rows: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
        """``rows`` (default: the training rows) as ``{input, references, task}`` with the prompt filled in."""
        tmpls = [get_template(t) for t in self.templates]
        out = []
        for i, row in enumerate(self.rows if rows is None else rows):
            if self.target_field is not None:
                if row.get(self.target_field) in (None, ""):
                    raise DataError(f"task '{self.name}' row {i}: no '{self.target_field}' (target_field)")
                refs = [str(row[self.target_field])]
            else:
                refs = row.get("references") or []
                refs = [refs] if isinstance(refs, str) else list(refs)
                if not refs:
                    raise DataError(f"task '{self.name}' row {i}: no references to learn from")
            out.append({"input": tmpls[i % len(tmpls)].render(row), "references": refs, "task": self.name})
        return out


@dataclass
class MixReport:
    """How many rows each task contributed (and how many of them were repeats)."""

    size: int
    rows: dict[str, int]
    repeated: dict[str, int]

    def summary(self) -> str:
        parts = [f"{k} {v}" + (f" ({self.repeated[k]} repeated)" if self.repeated[k] else "") for k, v in
                 self.rows.items()]
        return f"{self.size} rows: " + ", ".join(parts)


def mix_tasks(tasks: Sequence[Task], size: int | None = None, seed: int = 0) -> tuple[list[dict[str, Any]], MixReport]:
    """One shuffled training set drawn from ``tasks`` by weight; see the module docstring.

    Args:
        tasks: the tasks (names must differ).
        size: rows in the mix; default the sum of the tasks' sizes.
        seed: seed of the draw and the shuffle.
    """
    if not tasks:
        raise ConfigError("tasks: give at least one task")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"tasks: names must differ, got {names}")
    for t in tasks:
        if not len(t.rows):
            raise DataError(f"task '{t.name}': no training rows")
    size = size if size is not None else sum(len(t.rows) for t in tasks)
    if size <= 0:
        raise ConfigError(f"size: must be > 0, got {size}")
    total = sum(t.weight for t in tasks)
    shares = [int(size * t.weight / total) for t in tasks]
    for i in sorted(range(len(tasks)), key=lambda i: -(size * tasks[i].weight / total - shares[i]))[:size - sum(shares)]:
        shares[i] += 1  # largest remainders get the rows rounding left over
    rng = random.Random(seed)
    mixed: list[dict[str, Any]] = []
    repeated: dict[str, int] = {}
    for task, share in zip(tasks, shares):
        rendered = task.render()
        order: list[int] = []
        while len(order) < share:
            chunk = list(range(len(rendered)))
            rng.shuffle(chunk)
            order.extend(chunk)
        mixed.extend(rendered[i] for i in order[:share])
        repeated[task.name] = max(0, share - len(rendered))
    rng.shuffle(mixed)
    return mixed, MixReport(size, dict(zip(names, shares)), repeated)


def task_scores(loaded: Any, task: Task, *, max_input_tokens: int = 384, max_target_tokens: int = 64,
                batch_size: int = 8, generate: bool = False, max_new_tokens: int = 32) -> dict[str, float]:
    """Mean token loss (and with ``generate`` ROUGE-1/L) of ``loaded`` on ``task.eval_rows``."""
    import torch

    rows = task.render(task.eval_rows)
    if not rows:
        raise DataError(f"task '{task.name}': no eval_rows to score")
    ds, _ = build_dataset(rows, loaded.tokenizer, loaded.kind, ["none"], max_input_tokens, max_target_tokens)
    collate = PadCollator(loaded.tokenizer.pad_token_id)
    model = loaded.model
    was_training = model.training
    model.eval()
    total = count = 0.0
    keep = [c for c in ("input_ids", "attention_mask", "labels")]
    with torch.no_grad():
        for start in range(0, len(ds), batch_size):
            feats = [{k: ds[i][k] for k in keep} for i in range(start, min(start + batch_size, len(ds)))]
            batch = collate(feats)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["labels"]).logits
            labels = batch["labels"]
            if loaded.kind == "causal":  # position t predicts token t + 1
                logits, labels = logits[:, :-1], labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                    labels.reshape(-1), ignore_index=-100, reduction="sum")
            total += float(nll)
            count += int((labels != -100).sum())
    out = {"loss": round(total / max(count, 1), 5)}
    if generate:
        preds = run(loaded, [r["input"] for r in rows], GenerationSettings(max_new_tokens=max_new_tokens),
                    batch_size=batch_size, max_input_tokens=max_input_tokens, truncate=True)
        scores = rouge(preds, [r["references"] for r in rows], rouge_types=("rouge1", "rougeL"))
        out |= {k: round(v, 4) for k, v in scores.items()}
    if was_training:
        model.train()
    return out
