"""Stage ``pal``: program-aided answers; the model writes Python, a bubblewrap sandbox runs it, the printed result
is the answer (``llmcycle.apps.pal``). Without bubblewrap the stage refuses to start, naming what to install,
unless ``sandbox.unsafe_no_sandbox`` is set."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from llmcycle.apps.llm import LLMFields
from llmcycle.apps.pal import pal_answers
from llmcycle.apps.sandbox import Sandbox, SandboxConfig
from llmcycle.apps.taskset import load_tasks
from llmcycle.core.files import atomic_write_json, atomic_write_jsonl
from llmcycle.generation.settings import GenerationSettings
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, StageContext, register_stage


class PalConfig(LLMFields):
    """Program-aided answers: the model writes Python, the sandbox runs it, the last printed line is the answer."""

    tasks: str = Field("builtin:arithmetic", description="Questions with answers: builtin:arithmetic or a JSONL "
                       "file (question, answer).")
    n: int | None = Field(10, ge=1, description="Use the first n questions (null: all).")
    shots: int = Field(3, ge=0, description="Solved exemplars (question, program) before each question.")
    exemplars: str = Field("pal-arithmetic", description="Exemplar set of the prompt registry.")
    template: str = Field("pal", description="Prompt template with {question} (llmcycle.prompts).")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Limits of the sandbox the programs "
                                   "run in.")
    generation_defaults: ClassVar[dict[str, dict[str, Any]]] = {
        "generation": {"max_new_tokens": 160, "stop": ["# Question:"]}}
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(**PalConfig.generation_defaults["generation"]),
        description="Decoding of the programs (default: greedy, 160 new tokens, stop before another "
                    "'# Question:').")


class Pal(BaseStage):
    kind = "pal"
    config_cls = PalConfig
    title = "Program-aided answers"

    def writes(self, cfg: PalConfig) -> list[str]:
        return ["pal_answers.jsonl", "pal_result.json", "section.md"]

    def plan_notes(self, cfg: PalConfig, incoming: Any, model: Any) -> list[str]:
        return cfg.plan_notes()

    def run(self, ctx: StageContext, cfg: PalConfig, out: Path) -> str:
        sandbox = Sandbox(cfg.sandbox)  # refuses before any work when there is no isolation
        tasks = load_tasks(cfg.tasks, cfg.n)
        llm = cfg.make_llm(lambda: ctx.model)
        ctx.progress(f"{len(tasks)} programs from {llm.name}, run in the sandbox ({sandbox.isolation})")
        results = pal_answers(tasks, llm, cfg.generation, sandbox, cfg.template, cfg.shots, cfg.exemplars)
        atomic_write_jsonl(out / "pal_answers.jsonl", [r.to_dict() for r in results])
        n = len(results)
        summary = {"n": n, "llm": llm.name, "isolation": sandbox.isolation,
                   "exact_match": sum(r.correct for r in results) / n,
                   "outcomes": dict(Counter(r.status for r in results)), "sandbox": cfg.sandbox.model_dump()}
        atomic_write_json(out / "pal_result.json", summary)
        rows = [[r.question, r.gold, "`" + r.program.replace("\n", "; ")[:160] + "`", r.status,
                 r.answer if r.answer is not None else r.message[:80], "yes" if r.correct else "no"]
                for r in results[:8]]
        outcomes = ", ".join(f"{k}: {v}" for k, v in summary["outcomes"].items())
        return (f"## Program-aided answers\n\n{n} questions from `{cfg.tasks}`, programs by {llm.name}, run in "
                f"{sandbox.isolation}. Exact match **{summary['exact_match']:.3f}**; outcomes: {outcomes}.\n\n"
                + md_table(["question", "reference", "program", "outcome", "answer", "correct"], rows))

    def glance(self, folder: Path, cfg: PalConfig) -> Glance:
        try:
            r = json.loads((folder / "pal_result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        return Glance(lines=[f"PAL ({folder.name}): exact match {r['exact_match']:.2f} over {r['n']} questions; "
                             f"outcomes {', '.join(f'{k} {v}' for k, v in r['outcomes'].items())}."])


STAGE: Any = register_stage(Pal())
