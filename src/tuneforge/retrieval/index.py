"""In-memory search indexes over a vector store's persisted chunks, and hybrid search.

A store's chunks (embeddings + keyword terms, both computed once at ingestion) are loaded into a
:class:`StoreIndex` on first search and kept while the store's ``revision`` in the database is
unchanged; any ingestion or deletion bumps the revision, so every process sees its own stale index
and rebuilds it. Search scores a query against every chunk with both retrievers (a matrix-vector
product and BM25), takes each retriever's top candidates and fuses the two rankings with
reciprocal rank fusion (RRF, k=60). The fused score is divided by its maximum (first in every
ranking), so it lies in 0..1: 1.0 means "ranked first by both retrievers", 0.67 "first by the
vector retriever only" — ``score_threshold`` therefore keeps results the retrievers agree on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.db.models import VectorStoreChunkRow
from tuneforge.retrieval import embeddings
from tuneforge.retrieval.keyword import BM25, tokenize

RRF_K = 60
# The keyword ranking counts half as much as the vector ranking: e5 is the stronger retriever on
# our bilingual benchmark, and BM25 always returns *something* (a chunk sharing only "day" or
# "get") that unweighted fusion would let push true vector hits out of the top 5.
WEIGHTS = {"vector": 1.0, "keyword": 0.5}
MODES = ("hybrid", "vector", "keyword")


@dataclass
class StoreIndex:
    store_id: str
    revision: int
    chunk_ids: np.ndarray  # int64, one per chunk
    file_ids: np.ndarray  # object (str), one per chunk
    vectors: np.ndarray  # (n, 384) float32, normalized
    bm25: BM25

    @property
    def size(self) -> int:
        return len(self.chunk_ids)


@dataclass
class Hit:
    chunk_id: int
    file_id: str
    score: float
    vector_rank: int | None
    keyword_rank: int | None


def load_index(session: Session, store_id: str, revision: int) -> StoreIndex:
    rows = session.execute(select(VectorStoreChunkRow.id, VectorStoreChunkRow.file_id, VectorStoreChunkRow.terms,
                                  VectorStoreChunkRow.embedding)
                           .where(VectorStoreChunkRow.vector_store_id == store_id)
                           .order_by(VectorStoreChunkRow.id)).all()
    return StoreIndex(store_id, revision,
                      np.array([r[0] for r in rows], dtype=np.int64),
                      np.array([r[1] for r in rows], dtype=object),
                      embeddings.from_bytes([r[3] for r in rows]),
                      BM25([r[2].split() for r in rows]))


class IndexCache:
    """Per-process cache of store indexes, keyed by store id and checked against the revision."""

    def __init__(self, max_stores: int = 64):
        self.max_stores = max_stores
        self._indexes: dict[str, StoreIndex] = {}
        self._lock = threading.Lock()
        self.builds = 0  # for tests and stats

    def get(self, session: Session, store_id: str, revision: int) -> StoreIndex:
        with self._lock:
            cached = self._indexes.get(store_id)
            if cached is not None and cached.revision == revision:
                return cached
            index = load_index(session, store_id, revision)
            self.builds += 1
            self._indexes.pop(store_id, None)
            self._indexes[store_id] = index
            while len(self._indexes) > self.max_stores:  # least recently built goes first
                self._indexes.pop(next(iter(self._indexes)))
            return index

    def drop(self, store_id: str) -> None:
        with self._lock:
            self._indexes.pop(store_id, None)


_default_cache = IndexCache()


def default_cache() -> IndexCache:
    return _default_cache


def _top(scores: np.ndarray, allowed: np.ndarray, k: int, positive_only: bool) -> np.ndarray:
    """Indices of the k best allowed scores, best first."""
    candidates = np.flatnonzero(allowed & (scores > 0)) if positive_only else np.flatnonzero(allowed)
    if len(candidates) > k:
        part = np.argpartition(-scores[candidates], k - 1)[:k]
        candidates = candidates[part]
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def search(index: StoreIndex, queries: list[str], *, limit: int, allowed_files: set[str] | None = None,
           mode: str = "hybrid", candidates: int = 50, query_vectors: list[np.ndarray] | None = None) -> list[Hit]:
    """Best ``limit`` chunks for one or more queries (several queries are fused like retrievers)."""
    if index.size == 0 or not queries:
        return []
    allowed = np.ones(index.size, dtype=bool) if allowed_files is None else \
        np.isin(index.file_ids, list(allowed_files)) if allowed_files else np.zeros(index.size, dtype=bool)
    depth = max(candidates, limit * 3)
    fused = np.zeros(index.size, dtype=np.float64)
    vector_rank: dict[int, int] = {}
    keyword_rank: dict[int, int] = {}
    best = 0.0  # the fused score of a chunk ranked first everywhere
    for qi, query in enumerate(queries):
        if mode in ("hybrid", "vector"):
            qvec = query_vectors[qi] if query_vectors is not None else embeddings.embed_query(query)
            cos = index.vectors @ qvec
            for rank, i in enumerate(_top(cos, allowed, depth, positive_only=False)):
                fused[i] += WEIGHTS["vector"] / (RRF_K + rank + 1)
                vector_rank.setdefault(int(i), rank + 1)
            best += WEIGHTS["vector"] / (RRF_K + 1)
        if mode in ("hybrid", "keyword"):
            bm = index.bm25.scores(tokenize(query))
            for rank, i in enumerate(_top(bm, allowed, depth, positive_only=True)):
                fused[i] += WEIGHTS["keyword"] / (RRF_K + rank + 1)
                keyword_rank.setdefault(int(i), rank + 1)
            best += WEIGHTS["keyword"] / (RRF_K + 1)
    order = _top(fused, allowed, limit, positive_only=True)
    return [Hit(int(index.chunk_ids[i]), str(index.file_ids[i]), float(min(1.0, fused[i] / best)),
                vector_rank.get(int(i)), keyword_rank.get(int(i))) for i in order]
