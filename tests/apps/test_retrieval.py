"""Retrieval: chunks keep their source and position, each method ranks the relevant document first on a
constructed corpus, fusion follows the RRF formula, a saved index reloads to identical results, bad input is
refused clearly, and the retrieval metrics match hand-computed values."""

from __future__ import annotations

import json
import math

import pytest

from llmcycle.apps.corpus import CorpusConfig, Document, chunk_documents, load_documents
from llmcycle.apps.metrics import as_number, canonical, contains_answer, exact_match, retrieval_scores
from llmcycle.apps.retrieval import IndexConfig, RetrievalIndex, doc_ranking
from llmcycle.core.errors import ConfigError, DataError
from tests.apps.conftest import DOCS, QUERIES


def test_chunks_are_token_windows_with_overlap_that_keep_source_and_position(index):
    tok = index.model.tokenizer
    for doc_id, text in DOCS.items():
        chunks = [c for c in index.chunks if c.doc_id == doc_id]
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        assert len(chunks) == 1 + math.ceil(max(0, len(offsets) - 16) / 12)
        assert [c.position for c in chunks] == list(range(len(chunks)))
        assert all(c.source == "constructed" and text[c.start:c.end] == c.text for c in chunks)
        for i, c in enumerate(chunks):  # window i: tokens [12 i, 12 i + 16); neighbours share 4 tokens
            first, last = 12 * i, min(12 * i + 16, len(offsets)) - 1
            assert (c.start, c.end) == (offsets[first][0], offsets[last][1])
        assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert [c.id for c in index.chunks] == list(range(len(index.chunks)))
    assert len({c.doc_id for c in index.chunks if c.position > 0}) == len(DOCS)  # every one spans several


@pytest.mark.parametrize("method", ["dense", "bm25", "hybrid"])
def test_each_method_ranks_the_relevant_document_first(index, method):
    hits = index.search(list(QUERIES), k=6, method=method)
    assert [doc_ranking(h)[0] for h in hits] == list(QUERIES.values())
    assert all([h.rank for h in row] == list(range(1, len(row) + 1)) for row in hits)
    assert all(row[i].score >= row[i + 1].score for row in hits for i in range(len(row) - 1))


def test_hybrid_is_reciprocal_rank_fusion_of_the_two_rankings(index):
    query = "how does the king move in chess?"
    dense = index.dense_rank([query], 20)[0]
    lexical = index.bm25_rank([query], 20)[0]
    want: dict[int, float] = {}
    for ranking in (dense, lexical):
        for rank, (c, _) in enumerate(ranking, start=1):
            want[c] = want.get(c, 0) + 1 / (60 + rank)
    got = index.search([query], k=5, method="hybrid", depth=20)[0]
    assert [h.chunk.id for h in got] == sorted(want, key=lambda c: (-want[c], c))[:5]
    assert [h.score for h in got] == pytest.approx(sorted(want.values(), reverse=True)[:5])
    assert set(got[0].scores) <= {"dense", "bm25"} and got[0].scores


def test_saved_index_reloads_to_identical_results(index, tmp_path):
    folder = index.save(tmp_path / "idx")
    assert {p.name for p in folder.iterdir()} == {"settings.json", "chunks.jsonl", "dense.faiss", "bm25"}
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["config"]["chunk_tokens"] == 16 and settings["config"]["kind"] == "flat"
    assert settings["n_docs"] == len(DOCS) and settings["dim"] == 384
    loaded = RetrievalIndex.load(folder)
    assert loaded.chunks == index.chunks and loaded.config == index.config
    queries = list(QUERIES) + ["zzzqx wvvk"]
    for method in ("dense", "bm25", "hybrid"):
        a, b = index.search(queries, k=5, method=method), loaded.search(queries, k=5, method=method)
        assert [[(h.chunk.id, h.score) for h in r] for r in a] == [[(h.chunk.id, h.score) for h in r] for r in b]
    assert loaded.search(["zzzqx wvvk"], k=5, method="bm25") == [[]]
    assert not list(tmp_path.glob(".idx.tmp-*"))  # written beside it, then renamed into place


def test_hnsw_index_finds_what_flat_finds_and_reloads(documents, tmp_path):
    hnsw = RetrievalIndex.build(documents, IndexConfig(chunk_tokens=16, chunk_overlap=4, kind="hnsw", bm25=False))
    hits = hnsw.search(list(QUERIES), k=3, method="dense")
    assert [doc_ranking(h)[0] for h in hits] == list(QUERIES.values())
    again = RetrievalIndex.load(hnsw.save(tmp_path / "h"))
    assert type(again.dense).__name__ == "IndexHNSWFlat"
    assert [[h.chunk.id for h in r] for r in again.search(list(QUERIES), k=3, method="dense")] == \
        [[h.chunk.id for h in r] for r in hits]
    with pytest.raises(Exception, match="BM25 index, which was not built"):
        again.search(["x"], method="hybrid")


def test_corpus_from_files_and_from_a_data_set_column(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\nSome markdown text.")
    (tmp_path / "docs" / "b.txt").write_text("Plain text.")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"id": "r1", "text": "row one"}) + "\n" +
                                         json.dumps({"text": "row two"}) + "\n")
    docs = load_documents(CorpusConfig(paths=[str(tmp_path / "docs"), str(tmp_path / "rows.jsonl")], data=None))
    assert [d.id for d in docs] == [str(tmp_path / "docs" / "a.md"), str(tmp_path / "docs" / "b.txt"), "r1",
                                    "rows.jsonl:2"]
    assert docs[2].source == str(tmp_path / "rows.jsonl") and docs[3].text == "row two"
    dialogues = load_documents(CorpusConfig(data="builtin:dialogues", splits=["test"]))
    assert len(dialogues) == 19 and dialogues[0].id == "builtin_a_008" and "Vortex 500" in dialogues[0].text
    assert dialogues[0].source == "builtin:dialogues (test)"


def test_bad_corpus_input_is_refused_naming_file_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"body": "no text"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'text' is missing"):
        load_documents(CorpusConfig(paths=[str(bad)], data=None))
    (tmp_path / "dup.jsonl").write_text(json.dumps({"id": "x", "text": "a"}) + "\n" +
                                        json.dumps({"id": "x", "text": "b"}) + "\n")
    with pytest.raises(DataError, match="document id 'x' appears twice"):
        load_documents(CorpusConfig(paths=[str(tmp_path / "dup.jsonl")], data=None))
    with pytest.raises(DataError, match="no such file or folder"):
        load_documents(CorpusConfig(paths=[str(tmp_path / "missing.txt")], data=None))
    with pytest.raises(DataError, match="has no column 'body'"):
        load_documents(CorpusConfig(data="builtin:dialogues", text_field="body"))
    with pytest.raises(ConfigError, match="chunk_overlap"):
        IndexConfig.from_dict({"chunk_tokens": 10, "chunk_overlap": 10})
    with pytest.raises(DataError, match="not a saved index"):
        RetrievalIndex.load(tmp_path)
    with pytest.raises(DataError, match="chunk_overlap"):
        chunk_documents([Document("a", "b", "c")], None, 4, 4)


def test_chunk_tokens_beyond_the_embedding_model_are_refused(documents):
    with pytest.raises(DataError, match="more than the embedding model takes"):
        RetrievalIndex.build(documents, IndexConfig(chunk_tokens=400, chunk_overlap=10))


def test_retrieval_metrics_match_hand_computed_values():
    rankings = [["a", "b", "c"], ["x", "a", "y"], ["p", "q", "r"]]
    relevant = [["a"], ["a"], ["z"]]
    s = retrieval_scores(rankings, relevant, ks=(1, 3))
    assert s["hit@1"] == pytest.approx(1 / 3) and s["hit@3"] == pytest.approx(2 / 3)
    assert s["mrr"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert s["ndcg@3"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    two = retrieval_scores([["a", "x", "b"]], [["a", "b"]], ks=(3,))
    assert two["ndcg@3"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))


def test_answer_normalisation():
    assert exact_match("$1,200.00", "1200") and exact_match("The Frankfurt.", "frankfurt")
    assert not exact_match(None, "1") and not exact_match("12", "1.2")
    assert canonical("2.50") == "2.5" and as_number("1,2") is None
    assert contains_answer("Your case number is VX-33817.", "VX-33817")
    assert not contains_answer("number 133817", "33817")
