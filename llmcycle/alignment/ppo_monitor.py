"""The reward-hacking monitor of a PPO run.

A policy can raise its reward by drifting away from what we wanted (repeating a rewarded word,
forgetting the task). Every ``monitor.every`` steps, and once before training as the baseline, the
monitor decodes greedily on a fixed sample of prompts and measures:

* ``rouge1`` against the references (the task metric; skipped without references);
* ``distinct-1`` / ``distinct-2`` of the responses (collapse into repetition lowers them);
* ``kl``: mean sequence KL (same estimator as the training penalty) of those greedy responses
  between the policy and the frozen reference.

It warns when ROUGE-1 falls more than ``max_rouge_drop`` below the baseline, distinct-2 falls
under ``min_distinct2`` or the KL exceeds ``max_kl``; with ``action: stop`` the run then ends; with
``action: rollback`` it ends with the policy of the last check that passed (the start of the run at
worst): early stopping on the task metric.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from llmcycle.alignment.ppo_config import MonitorOptions
from llmcycle.core.errors import LLMCycleError
from llmcycle.evaluation.rouge import rouge
from llmcycle.evaluation.text_metrics import distinct

log = logging.getLogger("llmcycle")


class RewardHackingMonitor:
    """Greedy evaluation on ``prompts`` (with ``references`` when given); see the module docstring."""

    def __init__(self, opts: MonitorOptions, prompts: Sequence[str], references: Sequence[Any] | None,
                 held_out: bool):
        if references is not None and len(references) != len(prompts):
            raise LLMCycleError(f"monitor: {len(references)} references for {len(prompts)} prompts")
        self.opts = opts
        self.prompts = list(prompts)
        self.references = list(references) if references is not None else None
        self.held_out = held_out
        self.baseline: dict[str, Any] | None = None

    @classmethod
    def build(cls, opts: MonitorOptions, prompts: Sequence[str], references: Sequence[Any] | None,
              eval_prompts: Sequence[str] | None, eval_references: Sequence[Any] | None,
              seed: int) -> RewardHackingMonitor:
        """The first ``n_samples`` of ``eval_prompts``; without them a seeded sample of the training prompts."""
        n = opts.n_samples
        if eval_prompts is not None:
            refs = list(eval_references)[:n] if eval_references is not None else None
            return cls(opts, list(eval_prompts)[:n], refs, held_out=True)
        rows = sorted(random.Random(seed).sample(range(len(prompts)), min(n, len(prompts))))
        log.warning("monitor: no eval_prompts given; watching %d training prompts (not held out)", len(rows))
        refs = [references[i] for i in rows] if references is not None else None
        return cls(opts, [prompts[i] for i in rows], refs, held_out=False)

    def evaluate(self, trainer: Any, step: int) -> dict[str, Any]:
        """Measure at ``step`` (0: the baseline); returns the record, with ``warnings`` (empty when fine)."""
        texts, token_ids = trainer.generate(self.prompts, greedy=True)
        record: dict[str, Any] = {"step": step, "held_out": self.held_out, "n": len(texts)}
        if self.references is not None:
            record["rouge1"] = rouge(texts, self.references, rouge_types=("rouge1",))["rouge1"]
        record.update(distinct(texts, (1, 2)))
        record["kl"] = trainer.sequence_kl(self.prompts, token_ids, temperature=1.0)
        record["sample"] = texts[0] if texts else ""
        if self.baseline is None:
            self.baseline = dict(record)
        record["warnings"] = self.check(record)
        for w in record["warnings"]:
            log.warning("monitor, step %d: %s", step, w)
        return record

    def check(self, record: dict[str, Any]) -> list[str]:
        """What degraded, in words (empty: nothing)."""
        o, base, out = self.opts, self.baseline or {}, []
        if "rouge1" in record and "rouge1" in base and record["rouge1"] < base["rouge1"] - o.max_rouge_drop:
            out.append(f"ROUGE-1 fell from {base['rouge1']:.4f} to {record['rouge1']:.4f} "
                       f"(more than max_rouge_drop={o.max_rouge_drop})")
        if record["distinct-2"] < o.min_distinct2:
            out.append(f"distinct-2 is {record['distinct-2']:.3f}, under min_distinct2={o.min_distinct2} "
                       "(repetitive outputs)")
        if o.max_kl is not None and record["kl"] > o.max_kl:
            out.append(f"KL to the reference is {record['kl']:.3f}, above max_kl={o.max_kl}")
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.baseline = state.get("baseline")
