"""Stage ``cot``: chain-of-thought with few-shot exemplars, and self-consistency (k sampled chains, majority
vote), both scored by exact match (``llmcycle.apps.cot``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from llmcycle.apps.cot import cot_scores, self_consistency
from llmcycle.apps.llm import LLMFields
from llmcycle.apps.taskset import load_tasks
from llmcycle.core.files import atomic_write_json, atomic_write_jsonl
from llmcycle.generation.settings import GenerationSettings
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, StageContext, register_stage


class CotConfig(LLMFields):
    """Chain-of-thought prompting and self-consistency (majority vote over sampled chains), by exact match."""

    tasks: str = Field("builtin:arithmetic", description="Questions with answers: builtin:arithmetic or a JSONL "
                       "file (question, answer).")
    n: int | None = Field(10, ge=1, description="Use the first n questions (null: all).")
    numeric: bool = Field(True, description="Answers are numbers (extract the number after 'The answer is', else "
                          "the last number; compare as numbers).")
    shots: int = Field(4, ge=0, description="Solved exemplars with their reasoning before each question.")
    exemplars: str = Field("cot-arithmetic", description="Exemplar set of the prompt registry.")
    template: str = Field("cot", description="Prompt template (cot: few-shot; cot-zero: \"Let's think step by "
                          "step\").")
    samples: int = Field(5, ge=0, description="Sampled chains per question for self-consistency (0: greedy only).")
    generation_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "generation": {"max_new_tokens": 128, "stop": ["\nQ:"]},
        "sampling": {"max_new_tokens": 128, "stop": ["\nQ:"], "do_sample": True, "temperature": 0.7}}
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(**CotConfig.generation_defaults["generation"]),
        description="Decoding of the greedy chain (default: 128 new tokens, stop at a new 'Q:').")
    sampling: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(**CotConfig.generation_defaults["sampling"]),
        description="Decoding of the sampled chains (default: do_sample, temperature 0.7, 128 new tokens); "
                    "num_return_sequences is set to samples.")


class Cot(BaseStage):
    kind = "cot"
    config_cls = CotConfig
    title = "Chain-of-thought and self-consistency"

    def writes(self, cfg: CotConfig) -> list[str]:
        return ["cot_answers.jsonl", "cot_result.json", "section.md"]

    def plan_notes(self, cfg: CotConfig, incoming: Any, model: Any) -> list[str]:
        return cfg.plan_notes()

    def run(self, ctx: StageContext, cfg: CotConfig, out: Path) -> str:
        tasks = load_tasks(cfg.tasks, cfg.n)
        llm = cfg.make_llm(lambda: ctx.model)
        ctx.progress(f"{len(tasks)} questions: greedy chain + {cfg.samples} samples each, {llm.name}")
        results = self_consistency(tasks, llm, cfg.generation, cfg.sampling, cfg.samples, cfg.template, cfg.shots,
                                   cfg.exemplars, cfg.numeric)
        atomic_write_jsonl(out / "cot_answers.jsonl", [r.to_dict() for r in results])
        scores = cot_scores(results)
        atomic_write_json(out / "cot_result.json", {"n": len(results), "samples": cfg.samples, "llm": llm.name,
                                                    **scores})
        rows = [[r.question, r.gold, r.greedy_answer or "-", ", ".join(f"{k}: {v}" for k, v in r.votes.items()) or "-",
                 r.vote_answer or "-", "yes" if r.vote_correct else "no"] for r in results[:8]]
        return (f"## Chain-of-thought and self-consistency\n\n{len(results)} questions from `{cfg.tasks}`, "
                f"{cfg.shots} exemplars, {llm.name}. Exact match: greedy chain **{scores['greedy_exact_match']:.3f}**, "
                f"majority of {cfg.samples} sampled chains **{scores['vote_exact_match']:.3f}**.\n\n"
                + md_table(["question", "reference", "greedy answer", "votes", "vote", "vote correct"], rows)
                + (f"\nFirst greedy chain:\n\n```\n{results[0].greedy_output[:1000]}\n```\n" if results else ""))

    def glance(self, folder: Path, cfg: CotConfig) -> Glance:
        try:
            r = json.loads((folder / "cot_result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        return Glance(lines=[f"Chain-of-thought ({folder.name}, {r['n']} questions): exact match greedy "
                             f"{r['greedy_exact_match']:.2f}, self-consistency over {r['samples']} samples "
                             f"{r['vote_exact_match']:.2f}."])


STAGE: Any = register_stage(Cot())
