"""RAG answers: passages numbered in rank order within the budget (lowest ranked dropped first, then the last one
cut, both recorded), citations parsed, answers scored."""

from __future__ import annotations

import pytest

from llmcycle.apps.rag import answer_questions, answer_scores, parse_citations, rag_prompt, retrieval_eval
from llmcycle.apps.taskset import Task
from llmcycle.generation import GenerationSettings
from llmcycle.prompts.budget import count_tokens

Q = "my vacuum's motor broke, is it covered by the guarantee?"


def test_passages_are_numbered_in_rank_order_and_all_fit_a_large_budget(index, scripted):
    llm = scripted(["It is covered [1]."], max_input_tokens=2000)
    hits = index.search([Q], k=3)[0]
    built, kept = rag_prompt("rag-cite", Q, hits, llm, GenerationSettings())
    assert kept == 3 and not built.input_truncated
    for i, h in enumerate(hits, start=1):
        assert f"[{i}] ({h.chunk.label}) {h.chunk.text}" in built.text
    assert built.text.index("[1]") < built.text.index("[2]") < built.text.index("[3]")
    assert built.text.rstrip().endswith(f"Question: {Q}\nAnswer:")


def test_budget_drops_the_lowest_ranked_passages_first_then_cuts_and_records_it(index, scripted):
    hits = index.search([Q], k=4)[0]
    full, _ = rag_prompt("rag-cite", Q, hits, scripted([], max_input_tokens=4000), GenerationSettings())
    two = rag_prompt("rag-cite", Q, hits[:2], scripted([], max_input_tokens=4000), GenerationSettings())[0]
    llm = scripted([], max_input_tokens=two.n_tokens)  # room for exactly the two best passages
    built, kept = rag_prompt("rag-cite", Q, hits, llm, GenerationSettings())
    assert kept == 2 and not built.input_truncated and built.text == two.text and full.n_tokens > two.n_tokens
    tight = scripted(["x"], max_input_tokens=two.n_tokens // 2)
    cut, kept = rag_prompt("rag-cite", Q, hits, tight, GenerationSettings())
    assert kept == 1 and cut.input_truncated and cut.tokens_removed > 0
    assert cut.n_tokens <= two.n_tokens // 2 == cut.max_tokens
    assert count_tokens(tight.tokenizer, cut.text) == cut.n_tokens and Q in cut.text  # the question is never cut
    answer = answer_questions(index, [Q], tight, GenerationSettings(), k=4)[0]
    assert answer.dropped == [h.chunk.label for h in hits[1:]] and answer.input_truncated
    assert len(answer.passages) == 1 and answer.tokens_removed > 0


def test_citations_are_parsed_and_checked_against_the_passages_shown():
    assert parse_citations("Yes [2], see also [ 1 ] and [2] and [7].", 3) == ([2, 1], [7])
    assert parse_citations("no citation", 3) == ([], [])


def test_answers_end_to_end_with_scores(index, scripted):
    tasks = [Task("q1", Q, "two-year warranty", ["vacuum"]), Task("q2", "where does lava come from?", "magma",
                                                                   ["volcano"])]
    llm = scripted(["It has a two-year warranty [1].", "From magma [9]."])
    answers = answer_questions(index, [t.question for t in tasks], llm, GenerationSettings(max_new_tokens=16), k=2)
    assert [a.citations for a in answers] == [[1], []] and answers[1].invalid_citations == [9]
    assert answers[0].cited_passages[0]["doc_id"] == "vacuum"
    scores = answer_scores(answers, tasks)
    assert scores["answer_in_output"] == 1.0 and scores["cites_any"] == 0.5
    assert scores["cited_passage_has_answer"] == pytest.approx(0.5 if "two-year warranty" in
                                                               answers[0].passages[0]["text"].lower() else 0.0)
    assert scores["exact_match"] == 0.0 and 0 < scores["rouge1"] <= 1
    metrics = retrieval_eval(index, tasks, ks=(1, 3))
    assert set(metrics) == {"bm25", "dense", "hybrid"}
    assert all(m["hit@1"] == 1.0 and m["mrr"] == 1.0 and m["ndcg@3"] == 1.0 for m in metrics.values())
