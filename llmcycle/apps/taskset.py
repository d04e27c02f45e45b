"""Question sets for applications: JSONL rows with ``question`` and ``answer`` (and, for retrieval, the ids of
the documents that answer them).

Shipped with llmcycle (written for it, original):

* ``builtin:arithmetic``: 30 arithmetic word problems with numeric answers (PAL, chain-of-thought, agents);
* ``builtin:dialogue-questions``: 27 questions over ``builtin:dialogues``, each with its short answer (a span of
  the dialogue) and the ``fname`` of the dialogue that answers it (``dialogue``): a labelled query set for RAG.

A file of your own takes the same fields: ``question``, ``answer``, optionally ``id`` and ``relevant`` (a list of
document ids) or ``dialogue`` (one id).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmcycle.core.errors import DataError
from llmcycle.data.readers import read_jsonl_objects

TASK_DIR = Path(__file__).resolve().parent / "tasks"
BUILTIN_TASKS = {"arithmetic": "arithmetic.jsonl", "dialogue-questions": "dialogue_questions.jsonl"}


@dataclass
class Task:
    id: str
    question: str
    answer: str | None = None
    relevant: list[str] = field(default_factory=list)  # ids of the documents that answer it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def task_path(source: str) -> Path:
    """The file behind ``source`` (``builtin:NAME`` or a path)."""
    if source.startswith("builtin:"):
        name = source.split(":", 1)[1]
        if name not in BUILTIN_TASKS:
            raise DataError(f"unknown builtin task set {source!r}; valid: "
                            f"{', '.join('builtin:' + k for k in BUILTIN_TASKS)}")
        return TASK_DIR / BUILTIN_TASKS[name]
    return Path(source).expanduser()


def load_tasks(source: str, n: int | None = None, need_answer: bool = True) -> list[Task]:
    """The first ``n`` (all when None) tasks of ``source``; a bad row is an error naming file and line."""
    path = task_path(source)
    tasks: list[Task] = []
    for line, obj in read_jsonl_objects(path, "tasks"):
        where = f"{path}:{line}"
        question = obj.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: 'question' is missing or not text")
        answer = obj.get("answer")
        if answer is not None and not isinstance(answer, (str, int, float)):
            raise DataError(f"{where}: 'answer' must be text or a number")
        if need_answer and answer is None:
            raise DataError(f"{where}: 'answer' is missing (this set is scored)")
        relevant = obj.get("relevant", [obj["dialogue"]] if "dialogue" in obj else [])
        if not isinstance(relevant, list) or not all(isinstance(r, (str, int)) for r in relevant):
            raise DataError(f"{where}: 'relevant' must be a list of document ids")
        tasks.append(Task(str(obj.get("id", f"{path.stem}-{line}")), question.strip(),
                          None if answer is None else str(answer), [str(r) for r in relevant]))
    if not tasks:
        raise DataError(f"{path}: no tasks")
    return tasks[:n] if n is not None else tasks
