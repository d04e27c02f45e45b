"""Retrieval-augmented answers: retrieved chunks, numbered, in the prompt within the budget; citations parsed.

``rag_prompt`` fills a template (``rag-cite``: numbered passages, then the question) through the prompt
builder: passages go in rank order as ``[1] (doc#pos) text``; while the prompt is over the model's input
budget the lowest-ranked passage is dropped, and a single passage still too long is cut from its end (the
builder's truncation). What was dropped and cut is recorded with the answer. ``answer_questions`` retrieves,
builds, generates (a local model or an endpoint) and parses the ``[n]`` citations of each answer.

``evaluate_rag`` scores a labelled query set: retrieval hit@k, MRR and nDCG@k (documents ranked by their best
chunk) for BM25, dense and hybrid retrieval, and answers by ROUGE, exact match and whether a cited passage
contains the reference answer.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from llmcycle.apps.llm import LLM
from llmcycle.apps.metrics import contains_answer, exact_match, retrieval_scores
from llmcycle.apps.retrieval import METHODS, Hit, Method, RetrievalIndex, doc_ranking
from llmcycle.apps.taskset import Task
from llmcycle.generation import GenerationSettings
from llmcycle.prompts import build_prompt, get_template
from llmcycle.prompts.templates import PromptTemplate

CITATION = re.compile(r"\[\s*(\d{1,3})\s*\]")


@dataclass
class RagAnswer:
    """One question answered from retrieved passages."""

    question: str
    answer: str
    prompt: str
    passages: list[dict[str, Any]]  # the passages shown, numbered from 1: label, doc_id, position, text, score
    citations: list[int]  # passage numbers cited in the answer that exist
    invalid_citations: list[int] = field(default_factory=list)  # numbers cited that were not shown
    dropped: list[str] = field(default_factory=list)  # retrieved passages left out for the budget (labels)
    input_truncated: bool = False
    tokens_removed: int = 0
    prompt_tokens: int = 0
    max_tokens: int = 0

    @property
    def cited_passages(self) -> list[dict[str, Any]]:
        return [self.passages[i - 1] for i in self.citations]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def passages_text(hits: Sequence[Hit]) -> str:
    """``[1] (doc#0) text`` blocks, one per hit, in rank order."""
    return "\n\n".join(f"[{i}] ({h.chunk.label}) {h.chunk.text.strip()}" for i, h in enumerate(hits, start=1))


def rag_prompt(template: PromptTemplate | str, question: str, hits: Sequence[Hit], llm: LLM,
               settings: GenerationSettings) -> tuple[Any, int]:
    """(the builder's ``BuiltPrompt``, passages kept): as many top passages as fit, the last cut if need be."""
    template = get_template(template)
    limit = llm.max_input_tokens(settings)
    kept = len(hits)
    while True:
        row = {"context": passages_text(hits[:kept]), "question": question}
        built = build_prompt(template, row, tokenizer=llm.tokenizer, max_input_tokens=limit, chat=llm.chat)
        if not built.input_truncated or kept <= 1:
            return built, kept
        kept -= 1  # drop the lowest-ranked passage before cutting any passage's text


def parse_citations(answer: str, n_passages: int) -> tuple[list[int], list[int]]:
    """(valid, invalid) passage numbers cited as ``[n]``, each once, in order of first citation."""
    valid, invalid = [], []
    for m in CITATION.finditer(answer):
        n = int(m.group(1))
        target = valid if 1 <= n <= n_passages else invalid
        if n not in target:
            target.append(n)
    return valid, invalid


def answer_questions(index: RetrievalIndex, questions: Sequence[str], llm: LLM, settings: GenerationSettings,
                     k: int = 5, method: Method = "hybrid", template: str = "rag-cite") -> list[RagAnswer]:
    """Retrieve ``k`` chunks per question, fit them into the prompt, generate, parse citations."""
    all_hits = index.search(list(questions), k=k, method=method)
    built = [rag_prompt(template, q, hits, llm, settings) for q, hits in zip(questions, all_hits)]
    outputs = llm.complete([b.text for b, _ in built], settings)
    answers = []
    for q, hits, (b, kept), out in zip(questions, all_hits, built, outputs):
        text = out[0].text.strip()
        shown = hits[:kept]
        valid, invalid = parse_citations(text, len(shown))
        passages = [{"n": i, "label": h.chunk.label, "doc_id": h.chunk.doc_id, "position": h.chunk.position,
                     "source": h.chunk.source, "score": round(h.score, 6), "text": h.chunk.text}
                    for i, h in enumerate(shown, start=1)]
        answers.append(RagAnswer(q, text, b.text, passages, valid, invalid, [h.chunk.label for h in hits[kept:]],
                                 b.input_truncated, b.tokens_removed, b.n_tokens, b.max_tokens))
    return answers


def retrieval_eval(index: RetrievalIndex, tasks: Sequence[Task], ks: Sequence[int] = (1, 3, 5),
                   methods: Sequence[str] = METHODS) -> dict[str, dict[str, float]]:
    """hit@k, MRR and nDCG@k per method, documents ranked by their best chunk."""
    scored = [t for t in tasks if t.relevant]
    if not scored:
        return {}
    depth = min(len(index.chunks), max(ks) * 10)
    out = {}
    for method in methods:
        if method != "dense" and index.bm25 is None:
            continue
        hits = index.search([t.question for t in scored], k=depth, method=method)  # type: ignore[arg-type]
        out[method] = retrieval_scores([doc_ranking(h) for h in hits], [t.relevant for t in scored], ks)
    return out


def answer_scores(answers: Sequence[RagAnswer], tasks: Sequence[Task]) -> dict[str, float | None]:
    """ROUGE-1/L, exact match, answer contained in the text, a cited passage containing the answer, citing."""
    from llmcycle.evaluation import rouge  # rouge-score pulls in NLTK: only when scoring

    pairs = [(a, t) for a, t in zip(answers, tasks) if t.answer is not None]
    if not pairs:
        return {}
    n = len(pairs)
    preds = [a.answer for a, _ in pairs]
    refs = [t.answer or "" for _, t in pairs]
    scores = rouge([p or " " for p in preds], refs, rouge_types=("rouge1", "rougeL"))
    return {
        "rouge1": scores["rouge1"], "rougeL": scores["rougeL"],
        "exact_match": sum(exact_match(_strip_citations(p), r) for p, r in zip(preds, refs)) / n,
        "answer_in_output": sum(contains_answer(p, r) for p, r in zip(preds, refs)) / n,
        "cites_any": sum(bool(a.citations) for a, _ in pairs) / n,
        "cited_passage_has_answer": sum(any(contains_answer(c["text"], r) for c in a.cited_passages)
                                        for (a, _), r in zip(pairs, refs)) / n,
        "retrieved_passage_has_answer": sum(any(contains_answer(c["text"], r) for c in a.passages)
                                            for (a, _), r in zip(pairs, refs)) / n,
    }


def _strip_citations(text: str) -> str:
    return CITATION.sub("", text).strip()
