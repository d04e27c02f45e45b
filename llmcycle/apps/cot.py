"""Chain-of-thought: few-shot CoT prompts, answer extraction, and self-consistency by majority vote.

``cot_prompts`` builds ``Q: ... A:`` prompts with solved exemplars (the registry's ``cot-arithmetic`` rows by
default) through the prompt builder, so shots are dropped when the budget is short. ``extract_answer`` reads
the answer out of a reasoning chain: the text after "The answer is" (or "Final Answer:", "Answer:",
"####"), else the last number. ``self_consistency`` (Wang et al. 2022) samples ``k`` chains per question,
extracts each answer and returns the majority (ties go to the answer that appeared first); both the greedy
chain and the vote are scored by exact match (numbers compared as numbers).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from llmcycle.apps.llm import LLM
from llmcycle.apps.metrics import as_number, canonical, exact_match
from llmcycle.apps.taskset import Task
from llmcycle.core.errors import ConfigError
from llmcycle.generation import GenerationSettings
from llmcycle.prompts import IndexShots, build_prompts
from llmcycle.prompts.catalog import BUILTIN_EXEMPLARS

_CUES = [re.compile(p, re.IGNORECASE) for p in (
    r"the\s+(?:final\s+)?answer\s+is\s*:?\s*(.+)", r"final\s+answer\s*:\s*(.+)", r"####\s*(.+)",
    r"\banswer\s*:\s*(.+)")]
_NUMBER = re.compile(r"-?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def extract_answer(text: str, numeric: bool = True) -> str | None:
    """The answer a reasoning chain ends with (None when it gives none).

    After a cue ("The answer is", "Final Answer:", "####", "Answer:"), the first line; for numeric tasks
    the first number in it. Without a cue, numeric tasks take the last number in the text.
    """
    if not text:
        return None
    for cue in _CUES:
        matches = list(cue.finditer(text))
        if matches:
            tail = matches[-1].group(1).strip().splitlines()[0].strip() if matches[-1].group(1).strip() else ""
            if numeric:
                m = _NUMBER.search(tail)
                if m:
                    return _clean_number(m.group(0))
                continue
            return tail.rstrip(".").strip() or None
    if numeric:
        numbers = _NUMBER.findall(text)
        return _clean_number(numbers[-1]) if numbers else None
    return None


def _clean_number(text: str) -> str:
    value = as_number(text.rstrip(",."))
    return text if value is None else canonical(text.rstrip(",.")) or text


def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, dict[str, int]]:
    """(the most frequent answer, votes per answer); ties go to the one seen first; None answers do not vote."""
    keys = [canonical(a) for a in answers]
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return None, {}
    best = max(votes.values())
    winner = next(k for k in keys if k is not None and votes[k] == best)
    return winner, dict(votes)


def exemplar_rows(name: str) -> list[dict[str, str]]:
    if name not in BUILTIN_EXEMPLARS:
        raise ConfigError(f"exemplars: unknown set {name!r}; valid: {', '.join(BUILTIN_EXEMPLARS)}")
    return [{**r, "input": r["question"]} for r in BUILTIN_EXEMPLARS[name]]  # input: what shots are matched on


def cot_prompts(tasks: Sequence[Task], llm: LLM, settings: GenerationSettings, template: str = "cot",
                shots: int = 4, exemplars: str = "cot-arithmetic") -> Any:
    """The builder's prompts (a ``PromptBatch``) for every task: ``shots`` solved exemplars, then the question."""
    return question_prompts(tasks, llm, settings, template, shots, exemplars)


def question_prompts(tasks: Sequence[Task], llm: LLM, settings: GenerationSettings, template: str, shots: int,
                     exemplars: str) -> Any:
    """Prompts of ``template`` for every task's question after the first ``shots`` rows of an exemplar set, within
    the model's input budget (chain-of-thought and program-aided answers both build theirs so)."""
    pool = exemplar_rows(exemplars)
    if shots > len(pool):
        raise ConfigError(f"shots: {shots} asked, but the exemplar set {exemplars!r} has {len(pool)}")
    selector = IndexShots(pool, list(range(shots))) if shots else None
    rows = [{"question": t.question, "input": t.question} for t in tasks]
    return build_prompts(template, rows, tokenizer=llm.tokenizer,
                         shots=selector, max_input_tokens=llm.max_input_tokens(settings), chat=llm.chat)


@dataclass
class CotResult:
    """One question: the greedy chain and its answer, the sampled chains, their answers and the vote."""

    id: str
    question: str
    gold: str | None
    greedy_output: str
    greedy_answer: str | None
    greedy_correct: bool
    samples: list[str] = field(default_factory=list)
    sample_answers: list[str | None] = field(default_factory=list)
    votes: dict[str, int] = field(default_factory=dict)
    vote_answer: str | None = None
    vote_correct: bool = False
    prompt_tokens: int = 0
    shots_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def self_consistency(tasks: Sequence[Task], llm: LLM, greedy: GenerationSettings, sampling: GenerationSettings,
                     samples: int = 5, template: str = "cot", shots: int = 4, exemplars: str = "cot-arithmetic",
                     numeric: bool = True) -> list[CotResult]:
    """Greedy CoT and ``samples`` sampled chains per task, answers extracted, majority vote, exact match."""
    if samples > 0 and not sampling.do_sample:
        raise ConfigError("sampling.do_sample: self-consistency needs sampled chains; set do_sample: true "
                          "(or samples: 0 for greedy chain-of-thought only)")
    prompts = cot_prompts(tasks, llm, greedy, template, shots, exemplars)
    greedy_out = llm.complete(prompts.texts, greedy)
    sampled: list[list[Any]] = [[] for _ in tasks]
    if samples > 0:
        sampling = sampling.model_copy(update={"num_return_sequences": samples})
        sampled = llm.complete(prompts.texts, sampling)
    results = []
    for t, p, g, s in zip(tasks, prompts.prompts, greedy_out, sampled):
        g_text = g[0].text
        g_answer = extract_answer(g_text, numeric)
        texts = [c.text for c in s]
        answers = [extract_answer(x, numeric) for x in texts]
        winner, votes = majority_vote(answers) if texts else (canonical(g_answer), {})
        gold = t.answer
        results.append(CotResult(t.id, t.question, gold, g_text, g_answer,
                                 gold is not None and exact_match(g_answer, gold), texts, answers, votes, winner,
                                 gold is not None and exact_match(winner, gold), p.n_tokens, len(p.shots_dropped)))
    return results


def cot_scores(results: Sequence[CotResult]) -> dict[str, float]:
    n = len(results) or 1
    return {"greedy_exact_match": sum(r.greedy_correct for r in results) / n,
            "vote_exact_match": sum(r.vote_correct for r in results) / n,
            "greedy_answered": sum(r.greedy_answer is not None for r in results) / n,
            "mean_votes_for_winner": sum(max(r.votes.values(), default=0) for r in results) / n}
