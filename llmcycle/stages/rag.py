"""Stage ``rag``: retrieval-augmented generation over a corpus, evaluated on a labelled query set.

It builds (or loads, ``index_path``) a retrieval index over the corpus (``llmcycle.apps.retrieval``), scores
BM25, dense and hybrid retrieval on the queries (hit@k, MRR, nDCG@k), and answers the questions with the model
it receives or an OpenAI-compatible endpoint, the retrieved passages numbered in the prompt within the budget,
scored by ROUGE, exact match and whether a cited passage holds the reference answer. Default: the shipped
questions over ``builtin:dialogues`` (``builtin:dialogue-questions``), each labelled with its dialogue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from llmcycle.apps.corpus import CorpusConfig, load_documents
from llmcycle.apps.llm import LLMFields
from llmcycle.apps.rag import answer_questions, answer_scores, retrieval_eval
from llmcycle.apps.retrieval import IndexConfig, Method, RetrievalIndex
from llmcycle.apps.taskset import Task, load_tasks
from llmcycle.core.errors import DataError
from llmcycle.core.files import atomic_write_json, atomic_write_jsonl
from llmcycle.data import load_data
from llmcycle.generation.settings import GenerationSettings
from llmcycle.report import md_table
from llmcycle.stages.base import BaseStage, Glance, StageContext, register_stage


class RagConfig(LLMFields):
    """Retrieval-augmented generation: index a corpus, retrieve for each question, answer with citations."""

    corpus: CorpusConfig = Field(default_factory=CorpusConfig, description="Where the documents come from "
                                 "(default: every split of builtin:dialogues).")
    index: IndexConfig = Field(default_factory=IndexConfig, description="Chunking, embedding model and FAISS/BM25 "
                               "settings of the index built over the corpus.")
    index_path: str | None = Field(None, description="Load this saved index (from `llmcycle rag index`) instead of "
                                   "building one; corpus and index are then ignored.")
    queries: str = Field("builtin:dialogue-questions", description="Labelled questions: builtin:dialogue-questions, "
                         "a JSONL file (question, answer, relevant ids), or 'references' (each data row's first "
                         "reference text is a query for its own document).")
    n_queries: int | None = Field(10, ge=1, description="Use the first n questions (null: all).")
    method: Method = Field("hybrid", description="Retrieval for the answers: dense, bm25 or hybrid (reciprocal "
                           "rank fusion).")
    k: int = Field(3, ge=1, description="Passages retrieved per question and placed in the prompt (lowest ranked "
                   "dropped first when over the budget).")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant: score = sum 1 / (rrf_k + rank).")
    eval_k: list[int] = Field(default_factory=lambda: [1, 3, 5], min_length=1,
                              description="Cut-offs for hit@k and nDCG@k.")
    answer: bool = Field(True, description="Generate answers (false: retrieval evaluation only).")
    template: str = Field("rag-cite", description="Prompt template with {context} and {question} (llmcycle.prompts).")
    generation_defaults: ClassVar[dict[str, dict[str, Any]]] = {"generation": {"max_new_tokens": 48}}
    generation: GenerationSettings = Field(
        default_factory=lambda: GenerationSettings(**RagConfig.generation_defaults["generation"]),
        description="Decoding of the answers (default: greedy, 48 new tokens).")


def _queries(cfg: RagConfig, index: RetrievalIndex, ctx: StageContext) -> tuple[list[Task], int]:
    """The questions to use (those whose relevant documents are in the index, when labelled), and how many were
    left out because their documents are not."""
    if cfg.queries == "references":
        data = ctx.data if cfg.corpus.data == "recipe" else None
        if data is None:
            if not cfg.corpus.data:
                raise DataError("queries: 'references' needs corpus.data (a data set with reference texts)")
            data = load_data(cfg.corpus.data)
        docs = load_documents(cfg.corpus.model_copy(update={"paths": []}), data)
        by_text = {d.text: d.id for d in docs}
        tasks = []
        for split in cfg.corpus.splits or list(data.keys()):
            rows = data[split]
            text_col = cfg.corpus.text_field or "input"
            for text, refs in zip(rows[text_col], rows["references"]):
                if refs and str(text) in by_text:
                    tasks.append(Task(f"ref-{len(tasks)}", refs[0], None, [by_text[str(text)]]))
        if not tasks:
            raise DataError("queries: 'references': the corpus data has no reference texts")
        return tasks[:cfg.n_queries] if cfg.n_queries else tasks, 0
    tasks = load_tasks(cfg.queries, need_answer=False)
    ids = {c.doc_id for c in index.chunks}
    labelled = [t for t in tasks if t.relevant]
    kept = [t for t in tasks if not t.relevant or set(t.relevant) & ids]
    if labelled and not any(t.relevant for t in kept):
        raise DataError(f"queries: none of the documents {cfg.queries} is labelled with is in the corpus; index the "
                        "corpus they come from (builtin:dialogue-questions: corpus.data builtin:dialogues)")
    skipped = len(tasks) - len(kept)
    return (kept[:cfg.n_queries] if cfg.n_queries else kept), skipped


class Rag(BaseStage):
    kind = "rag"
    config_cls = RagConfig
    title = "Retrieval-augmented generation"

    def writes(self, cfg: RagConfig) -> list[str]:
        return ([] if cfg.index_path else ["index/"]) + ["answers.jsonl", "rag_result.json", "section.md"]

    def plan_notes(self, cfg: RagConfig, incoming: Any, model: Any) -> list[str]:
        return cfg.plan_notes()

    def run(self, ctx: StageContext, cfg: RagConfig, out: Path) -> str:
        if cfg.index_path:
            index = RetrievalIndex.load(cfg.index_path)
            where = f"loaded from {cfg.index_path}"
        else:
            docs = load_documents(cfg.corpus, ctx.data if cfg.corpus.data == "recipe" else None)
            index = RetrievalIndex.build(docs, cfg.index, progress=ctx.progress)
            index.save(out / "index")
            where = f"built into {ctx.rel(out / 'index')}"
        tasks, skipped = _queries(cfg, index, ctx)
        retrieval = retrieval_eval(index, tasks, cfg.eval_k)
        answers, scores, llm_name = [], {}, None
        if cfg.answer:
            llm = cfg.make_llm(lambda: ctx.model)
            llm_name = llm.name
            ctx.progress(f"answering {len(tasks)} questions with {llm.name}")
            answers = answer_questions(index, [t.question for t in tasks], llm, cfg.generation, cfg.k, cfg.method,
                                       cfg.template)
            scores = answer_scores(answers, tasks)
            atomic_write_jsonl(out / "answers.jsonl", [{"id": t.id, "gold": t.answer, "relevant": t.relevant,
                                                        **a.to_dict()} for t, a in zip(tasks, answers)])
        result = {"index": index.settings(), "index_where": where, "queries": cfg.queries, "n_queries": len(tasks),
                  "queries_skipped": skipped, "retrieval": retrieval, "answer_method": cfg.method, "k": cfg.k,
                  "llm": llm_name, "answers": scores,
                  "budget": {"passages_dropped": sum(len(a.dropped) for a in answers),
                             "answers_with_dropped": sum(bool(a.dropped) for a in answers),
                             "truncated": sum(a.input_truncated for a in answers)}}
        atomic_write_json(out / "rag_result.json", result)
        return rag_section(result, answers, tasks)

    def glance(self, folder: Path, cfg: RagConfig) -> Glance:
        try:
            r = json.loads((folder / "rag_result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return Glance()
        parts = []
        best = r["retrieval"].get(r["answer_method"]) or next(iter(r["retrieval"].values()), None)
        if best:
            parts.append(f"{r['answer_method']} retrieval hit@1 {best.get('hit@1', 0):.2f}, MRR {best['mrr']:.2f}")
        if r["answers"]:
            parts.append(f"answers exact match {r['answers']['exact_match']:.2f}, cited passage holds the answer "
                         f"{r['answers']['cited_passage_has_answer']:.2f}")
        return Glance(lines=[f"RAG ({folder.name}, {r['n_queries']} questions): " + "; ".join(parts) + "."])


def rag_section(result: dict[str, Any], answers: list[Any], tasks: list[Task]) -> str:
    idx = result["index"]
    c = idx["config"]
    lines = ["## Retrieval-augmented generation\n",
             f"Index {result['index_where']}: {idx['n_docs']} documents in {idx['n_chunks']} chunks of up to "
             f"{c['chunk_tokens']} tokens ({c['chunk_overlap']} overlap), {c['embedding_model']} embeddings "
             f"({idx['dim']}-d) in a FAISS {c['kind']} index, BM25 {'on' if c['bm25'] else 'off'}. "
             f"{result['n_queries']} questions from `{result['queries']}`"
             + (f" ({result['queries_skipped']} left out: their documents are not in the corpus)"
                if result["queries_skipped"] else "") + ".\n"]
    if result["retrieval"]:
        keys = list(next(iter(result["retrieval"].values())).keys())
        lines.append(md_table(["retrieval", *keys], [[m, *(f"{v[k]:.3f}" for k in keys)]
                                                     for m, v in result["retrieval"].items()]))
    if result["answers"]:
        a = result["answers"]
        lines.append(f"Answers by {result['llm']} from the top {result['k']} {result['answer_method']} passages:\n")
        lines.append(md_table(["metric", "value"], [[k, f"{v:.3f}"] for k, v in a.items()]))
        b = result["budget"]
        lines.append(f"Budget: {b['passages_dropped']} passages dropped in {b['answers_with_dropped']} prompts, "
                     f"{b['truncated']} prompts with a passage cut.\n")
        rows = [[t.question, t.answer or "-", a.answer, ", ".join(f"[{n}] {a.passages[n - 1]['label']}"
                                                                 for n in a.citations) or "-"]
                for t, a in list(zip(tasks, answers))[:5]]
        lines.append(md_table(["question", "reference", "answer", "cited"], rows))
    return "\n".join(lines)


STAGE: Any = register_stage(Rag())
