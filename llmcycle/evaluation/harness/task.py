"""Benchmark task files: a YAML that says where the rows are, which columns mean what, and how to prompt.

A task is either ``multiple_choice`` (each choice scored by the log-likelihood of its text as a
continuation of the prompt; reports ``acc`` and ``acc_norm``) or ``generative`` (the model writes
an answer, scored by a metric). Example (``llmcycle/evaluation/tasks/general_knowledge.yaml``)::

    name: general_knowledge
    type: multiple_choice
    data: general_knowledge.jsonl          # relative paths: against the YAML's folder
    fields: {question: question, choices: choices, answer: answer}
    prompt: "Question: {question}\\nAnswer:"
    num_fewshot: 0

The prompt is a ``str.format`` template over the row's columns, plus ``{question}`` and
``{context}`` (the columns ``fields`` maps to them) and, for multiple choice, ``{options}``
(``A. first\\nB. second ...``). Each choice is scored as ``target_delimiter + choice_format``
after the prompt; solved few-shot examples are ``prompt + target_delimiter + gold`` joined by
``fewshot_delimiter``, the same layout as lm-evaluation-harness.
"""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator

from llmcycle.core.config import StageConfig, load_yaml
from llmcycle.core.errors import ConfigError
from llmcycle.generation import GenerationSettings

TaskType = Literal["multiple_choice", "generative"]
Metric = Literal["exact_match", "rouge1", "rougeL", "bleu", "chrf"]
AnswerType = Literal["auto", "index", "letter", "text"]
CHOICE_KEYS = ("choice", "letter", "index")
SHIPPED_DIR = ("evaluation", "tasks")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def template_keys(template: str) -> list[str]:
    """The field names a ``str.format`` template uses; ValueError for a malformed template."""
    keys = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            if name == "" or name.isdigit():
                raise ValueError("use named fields such as {question}, not {} or {0}")
            keys.append(name.split(".")[0].split("[")[0])
    return keys


class TaskFields(StageConfig):
    """Which columns of a row mean what."""

    question: str | None = Field("question", description="Column available to the prompt as {question} "
                                 "(the question, or the sentence to complete).")
    context: str | None = Field(None, description="Column available to the prompt as {context} (a passage, "
                                "a HellaSwag-style context), when the task has one.")
    choices: str | list[str] = Field("choices", description="Multiple choice: one column holding the list of "
                                     "choices, or a list of columns holding one choice each (e.g. [A, B, C, D]).")
    answer: str = Field("answer", description="Column holding the gold answer. Multiple choice: a 0-based index, "
                        "a letter (A = first choice) or the text of the right choice. Generative: the reference "
                        "text, or a list of acceptable references.")

    @field_validator("choices")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) < 2:
            raise ValueError("a list of choice columns needs at least two columns")
        return v


class TaskConfig(StageConfig):
    """One benchmark task: data, column mapping, prompt and scoring."""

    name: str = Field(..., description="Task name (letters, digits, _ . -); names the output files "
                      "<name>.records.jsonl and <name>.metrics.json.")
    type: TaskType = Field(..., description="multiple_choice (log-likelihood of each choice) or generative "
                           "(generate, then score with `metric`).")
    data: str = Field(..., min_length=1, description="JSONL file of rows (one JSON object per line); a relative "
                      "path is resolved against the task YAML's folder.")
    fields: TaskFields = Field(default_factory=TaskFields, description="Which columns mean what.")
    answer_type: AnswerType = Field("auto", description="How to read the answer column of a multiple-choice row: "
                                    "index (0-based), letter (A, B, ...), text (equal to one choice), or auto "
                                    "(int -> index; a choice's text -> text; a single letter -> letter).")
    description: str = Field("", description="Text put once before the few-shot examples and the question "
                             "(an instruction such as 'The following are questions about geography.').")
    prompt: str = Field("Question: {question}\nAnswer:", description="str.format template of the prompt, over "
                        "the row's columns plus {question}, {context} and (multiple choice) {options}.")
    choice_format: str = Field("{choice}", description="Multiple choice: the text scored for each choice, a "
                               "template over {choice}, {letter} (A, B, ...) and {index}; '{letter}' scores the "
                               "letter instead of the text (MMLU style).")
    target_delimiter: str = Field(" ", description="Put between the prompt and the answer (a choice, a few-shot "
                                  "example's gold answer).")
    fewshot_delimiter: str = Field("\n\n", description="Put between solved few-shot examples and the question.")
    num_fewshot: int = Field(0, ge=0, description="Solved examples (k) put before each question.")
    fewshot_file: str | None = Field(None, description="JSONL file the few-shot examples are drawn from (same "
                                     "columns); default: the task's own rows, never the item being asked.")
    fewshot_seed: int = Field(1234, description="Seed of the few-shot draw; each item draws from its own "
                              "seeded generator, so results do not depend on limit or order.")
    metric: Metric | None = Field(None, description="Generative tasks: exact_match, rouge1, rougeL (in [0, 1]), "
                                  "bleu or chrf (sacrebleu, 0-100). Default exact_match.")
    ignore_case: bool = Field(False, description="exact_match: compare lower-cased texts.")
    stop: list[str] = Field(default_factory=lambda: ["\n"], description="Generative: the output is cut at the "
                            "first of these strings.")
    generation: GenerationSettings = Field(default_factory=lambda: GenerationSettings(max_new_tokens=16),
                                           description="Generative: decoding settings (greedy by default).")
    limit: int | None = Field(None, ge=1, description="Score only the first `limit` rows.")
    lm_eval_task: str | None = Field(None, description="The same task's name in lm-evaluation-harness, if it "
                                     "defines one (`llmcycle benchmark --lm-eval` runs that instead).")

    _base_dir: Path | None = PrivateAttr(None)
    _source: Path | None = PrivateAttr(None)

    @field_validator("name")
    @classmethod
    def _check_name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"{v!r} is not a valid task name: use letters, digits, '_', '.' and '-' "
                             "(it names output files)")
        return v

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("type") == "multiple_choice":
            raise ValueError("only for generative tasks; multiple-choice tasks report acc and acc_norm")
        return v

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, v: str) -> str:
        template_keys(v)
        return v

    @field_validator("choice_format")
    @classmethod
    def _check_choice_format(cls, v: str) -> str:
        unknown = [k for k in template_keys(v) if k not in CHOICE_KEYS]
        if unknown:
            raise ValueError(f"unknown key {{{unknown[0]}}}; valid: {{choice}}, {{letter}}, {{index}}")
        return v

    @property
    def metric_name(self) -> str:
        """The generative metric in use (exact_match when none is named)."""
        return self.metric or "exact_match"

    @property
    def where(self) -> str:
        """The task's YAML path (or its name when built in code), for messages."""
        return str(self._source) if self._source else f"task {self.name}"

    @property
    def base_dir(self) -> Path:
        """The folder relative data paths are resolved against (the YAML's, else the working directory)."""
        return self._base_dir or Path.cwd()

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    @property
    def data_path(self) -> Path:
        return self.resolve(self.data)

    @property
    def fewshot_path(self) -> Path | None:
        return self.resolve(self.fewshot_file) if self.fewshot_file else None

    def with_base_dir(self, folder: str | Path) -> "TaskConfig":
        """Set the folder relative paths are resolved against; returns self."""
        self._base_dir = Path(folder)
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TaskConfig":
        """Load and validate a task YAML; its data paths resolve against the YAML's folder."""
        task = cls.from_dict(load_yaml(path), where=str(path))
        task._source = Path(path)
        return task.with_base_dir(Path(path).resolve().parent)


def shipped_tasks() -> list[str]:
    """Names of the example tasks shipped with llmcycle (``llmcycle/evaluation/tasks/*.yaml``)."""
    folder = resources.files("llmcycle").joinpath(*SHIPPED_DIR)
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".yaml"))


def task_path(name_or_path: str | Path) -> Path:
    """A task YAML path, or the path of a shipped task given its name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path)
    if name in shipped_tasks():
        return Path(str(resources.files("llmcycle").joinpath(*SHIPPED_DIR, f"{name}.yaml")))
    if path.suffix in (".yaml", ".yml") or path.parent != Path("."):
        raise ConfigError(f"{path}: no such task file")
    raise ConfigError(f"no task file or shipped task named {name!r}; shipped tasks: {', '.join(shipped_tasks())}")


def load_task(name_or_path: str | Path) -> TaskConfig:
    """Load and validate a task YAML (or a shipped task by name); data paths resolve against its folder."""
    return TaskConfig.from_yaml(task_path(name_or_path))
