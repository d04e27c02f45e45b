"""ReAct agents (Yao et al. 2022): Thought / Action / Observation steps with tools, until a final answer.

Each step the model sees the ``react`` template (the tools, the format, an exemplar, the question) and the
transcript so far ending in ``Thought:``, and writes a thought and either ``Action: tool[input]`` (also
``Action: tool`` / ``Action Input: input``) or ``Final Answer: ...``. Generation stops at the stop sequences
(``\\nObservation:`` by default), so the model does not write the tool's answer itself; anything it writes
after an ``Observation:`` anyway is discarded. The tool runs and its result is appended as the observation.

Rules of the loop:

* an output that is neither an action nor a final answer is fed back once as an observation saying what is
  wrong; a second unparsable output in the same step ends the run (``parse_error``);
* at most ``max_steps`` steps (``step_limit``); an unknown tool or a tool's error is an observation, not a stop;
* a transcript that no longer fits the model's input budget ends the run (``budget``).

Every step (raw output, why generation ended, thought, action, observation, errors) is kept in the
``Trajectory``, written to the run and shown in the report.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

from llmcycle.apps.llm import LLM
from llmcycle.apps.metrics import exact_match
from llmcycle.apps.taskset import Task
from llmcycle.apps.tools import ToolRegistry
from llmcycle.core.errors import ConfigError
from llmcycle.generation import GenerationSettings
from llmcycle.prompts import build_prompt, get_template
from llmcycle.prompts.catalog import BUILTIN_EXEMPLARS

Status = Literal["answered", "step_limit", "parse_error", "budget"]
DEFAULT_STOP = ["\nObservation:"]
_OBSERVATION = re.compile(r"\bobservation\s*:", re.IGNORECASE)
_FINAL = re.compile(r"final\s*answer\s*:", re.IGNORECASE)
_ACTION = re.compile(r"\baction\s*:\s*", re.IGNORECASE)
_ACTION_INPUT = re.compile(r"\baction\s*input\s*:\s*", re.IGNORECASE)
_NAME = re.compile(r"([A-Za-z_][\w\-]*)")


@dataclass
class Parsed:
    thought: str = ""
    action: str | None = None
    action_input: str | None = None
    final_answer: str | None = None
    error: str | None = None


def parse_step(text: str) -> Parsed:
    """A model's step: its thought and either an action with its input or a final answer, or why neither."""
    cut = _OBSERVATION.search(text)
    if cut:  # the model wrote an observation itself: what follows is not its own step
        text = text[:cut.start()]
    final, action = _FINAL.search(text), _ACTION.search(text)
    if final and (not action or final.start() < action.start()):
        thought = _thought(text[:final.start()])
        answer = text[final.end():].strip().splitlines()[0].strip() if text[final.end():].strip() else ""
        if not answer:
            return Parsed(thought, error="'Final Answer:' is empty")
        return Parsed(thought, final_answer=answer)
    if action:
        thought, rest = _thought(text[:action.start()]), text[action.end():]
        name = _NAME.match(rest)
        if not name:
            return Parsed(thought, error="'Action:' is not followed by a tool name")
        after = rest[name.end():]
        if after.lstrip().startswith("["):
            body = after.lstrip()[1:]
            end = body.rfind("]")
            if end < 0:
                return Parsed(thought, error=f"'Action: {name.group(1)}[' has no closing ']'")
            return Parsed(thought, name.group(1), body[:end].strip())
        given = _ACTION_INPUT.search(after)
        if given:
            return Parsed(thought, name.group(1), after[given.end():].strip())
        return Parsed(thought, error=f"'Action: {name.group(1)}' has no input; write {name.group(1)}[input]")
    return Parsed(_thought(text), error="no 'Action: tool[input]' and no 'Final Answer:'")


def _thought(text: str) -> str:
    return re.sub(r"^\s*thought\s*:\s*", "", text.strip(), flags=re.IGNORECASE).strip()


@dataclass
class Step:
    """One model call of a run."""

    step: int  # 1-based step number (a retry after a parse error keeps its step's number)
    output: str  # the model's text, as generated (cut at a stop sequence)
    finish_reason: str  # stop (a stop sequence or the end token) or length
    thought: str = ""
    action: str | None = None
    action_input: str | None = None
    observation: str | None = None
    final_answer: str | None = None
    error: str | None = None  # why the output could not be parsed
    retry: bool = False  # this output answered a fed-back parse error
    prompt_tokens: int = 0


@dataclass
class Trajectory:
    id: str
    question: str
    gold: str | None
    status: Status
    answer: str | None
    correct: bool
    steps: list[Step] = field(default_factory=list)
    transcript: str = ""  # the scratchpad the model saw last, plus its last output

    @property
    def tool_calls(self) -> int:
        return sum(s.action is not None for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tool_calls": self.tool_calls}


def examples_text(name: str | None) -> str:
    """The exemplar block of the prompt (``react`` rows), or nothing."""
    if not name:
        return ""
    rows = BUILTIN_EXEMPLARS.get(name)
    if rows is None:
        raise ConfigError(f"examples: unknown exemplar set {name!r}; valid: {', '.join(BUILTIN_EXEMPLARS)}")
    return "".join(f"Example:\nQuestion: {r['question']}\n{r['trajectory']}\n\n" for r in rows)


class ReActAgent:
    """``ReActAgent(llm, tools, settings).run(task)`` -> ``Trajectory``."""

    def __init__(self, llm: LLM, tools: ToolRegistry, settings: GenerationSettings, max_steps: int = 6,
                 template: str = "react", examples: str | None = "react") -> None:
        if not settings.stop:
            settings = settings.model_copy(update={"stop": list(DEFAULT_STOP)})
        self.llm, self.tools, self.settings, self.max_steps = llm, tools, settings, max_steps
        self.template = get_template(template)
        self.examples = examples_text(examples)
        self.limit = llm.max_input_tokens(settings)

    def prompt(self, question: str, scratchpad: str) -> Any:
        row = {"tools": self.tools.describe(), "examples": self.examples, "question": question,
               "scratchpad": scratchpad + "Thought:"}
        return build_prompt(self.template, row, tokenizer=self.llm.tokenizer, max_input_tokens=self.limit,
                            chat=self.llm.chat)

    def run(self, task: Task) -> Trajectory:
        return self.run_many([task])[0]

    def run_many(self, tasks: Sequence[Task]) -> list[Trajectory]:
        """Every task's run; the tasks still running step together (one batched model call per step)."""
        runs = [_Run(t) for t in tasks]
        while True:
            active = [r for r in runs if r.status is None]
            if not active:
                break
            prompts = []
            for r in active:
                built = self.prompt(r.task.question, r.scratchpad)
                if built.input_truncated:
                    r.status = "budget"
                    continue
                prompts.append((r, built))
            if not prompts:
                continue
            outputs = self.llm.complete([b.text for _, b in prompts], self.settings)
            for (r, built), out in zip(prompts, outputs):
                self._advance(r, out[0].text, out[0].finish_reason, built.n_tokens)
        return [r.trajectory() for r in runs]

    def _advance(self, r: "_Run", text: str, finish: str, n_tokens: int) -> None:
        parsed = parse_step(text)
        step = Step(r.step, text, finish, parsed.thought, parsed.action, parsed.action_input,
                    final_answer=parsed.final_answer, error=parsed.error, retry=r.retrying, prompt_tokens=n_tokens)
        r.steps.append(step)
        if parsed.error is not None:
            if r.retrying:  # the error was fed back once already: the step fails
                r.status, r.last = "parse_error", text
                return
            r.retrying = True
            step.observation = (f"Invalid format: {parsed.error}. Continue with 'Action: tool_name[input]' "
                                f"(tools: {', '.join(self.tools.names)}) or 'Final Answer: the answer'.")
            r.scratchpad += f"Thought: {_one_line(text)}\nObservation: {step.observation}\n"
            return
        r.retrying = False
        if parsed.final_answer is not None:
            r.status, r.answer, r.last = "answered", parsed.final_answer, text
            return
        tool = self.tools.get(parsed.action or "")
        if tool is None:
            step.observation = f"unknown tool {parsed.action!r}; the tools are {', '.join(self.tools.names)}"
        else:
            step.observation = tool(parsed.action_input or "")
        r.scratchpad += (f"Thought: {parsed.thought}\nAction: {parsed.action}[{parsed.action_input}]\n"
                         f"Observation: {step.observation}\n")
        r.step += 1
        if r.step > self.max_steps:
            r.status = "step_limit"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


class _Run:
    def __init__(self, task: Task) -> None:
        self.task = task
        self.scratchpad = ""
        self.steps: list[Step] = []
        self.step = 1
        self.retrying = False
        self.status: Status | None = None
        self.answer: str | None = None
        self.last = ""

    def trajectory(self) -> Trajectory:
        gold = self.task.answer
        correct = gold is not None and self.answer is not None and exact_match(self.answer, gold)
        transcript = self.scratchpad + (f"Thought: {self.last}" if self.last else "")
        return Trajectory(self.task.id, self.task.question, gold, self.status or "budget", self.answer, correct,
                          self.steps, transcript)


def react_scores(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    n = len(trajectories) or 1
    out = {"exact_match": sum(t.correct for t in trajectories) / n,
           "answered": sum(t.status == "answered" for t in trajectories) / n,
           "mean_steps": sum(max((s.step for s in t.steps), default=0) for t in trajectories) / n,
           "mean_tool_calls": sum(t.tool_calls for t in trajectories) / n}
    for status in ("step_limit", "parse_error", "budget"):
        out[status] = sum(t.status == status for t in trajectories) / n
    return out
