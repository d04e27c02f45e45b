"""Program-aided answers (PAL, Gao et al. 2022): the model writes Python, the sandbox runs it, the printed result
is the answer.

``pal_answers`` builds few-shot prompts (the registry's ``pal`` template and ``pal-arithmetic`` exemplars:
question, then a short program ending in ``print``), generates one program per question, takes the code (the
first fenced block when the model wrote Markdown, else the text up to the next ``# Question:``), runs it in
``llmcycle.apps.sandbox.Sandbox`` and reads the last printed line. A program that fails, times out or hits a
limit gets that outcome as its answer (``error``, ``timeout``, ``cpu_limit``, ...), never a hang.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from llmcycle.apps.cot import question_prompts
from llmcycle.apps.llm import LLM
from llmcycle.apps.metrics import exact_match
from llmcycle.apps.sandbox import Sandbox
from llmcycle.apps.taskset import Task
from llmcycle.generation import GenerationSettings

_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_program(text: str) -> str:
    """The code in a model's output: the first fenced block, else the text up to the next question."""
    m = _FENCE.search(text)
    code = m.group(1) if m else re.split(r"^\s*#\s*Question\s*:", text, maxsplit=1, flags=re.MULTILINE)[0]
    return code.strip("\n").rstrip()


@dataclass
class PalResult:
    id: str
    question: str
    gold: str | None
    output: str  # what the model wrote
    program: str  # what ran
    status: str  # the sandbox's: ok, error, timeout, cpu_limit, memory_limit, ...
    answer: str | None
    correct: bool
    message: str
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pal_prompts(tasks: Sequence[Task], llm: LLM, settings: GenerationSettings, template: str = "pal",
                shots: int = 3, exemplars: str = "pal-arithmetic") -> Any:
    """The builder's prompts for every task: ``shots`` solved programs, then the question."""
    return question_prompts(tasks, llm, settings, template, shots, exemplars)


def pal_answers(tasks: Sequence[Task], llm: LLM, settings: GenerationSettings, sandbox: Sandbox,
                template: str = "pal", shots: int = 3, exemplars: str = "pal-arithmetic") -> list[PalResult]:
    """One program per task, run in ``sandbox``; its last printed line is the answer, scored by exact match."""
    prompts = pal_prompts(tasks, llm, settings, template, shots, exemplars)
    outputs = llm.complete(prompts.texts, settings)
    results = []
    for t, out in zip(tasks, outputs):
        text = out[0].text
        program = extract_program(text)
        run = sandbox.run(program) if program.strip() else None
        if run is None:
            results.append(PalResult(t.id, t.question, t.answer, text, program, "error", None, False,
                                     "the model wrote no code", 0.0))
            continue
        answer = run.answer
        results.append(PalResult(t.id, t.question, t.answer, text, program, run.status, answer,
                                 t.answer is not None and exact_match(answer, t.answer),
                                 run.message, run.wall_s))
    return results
