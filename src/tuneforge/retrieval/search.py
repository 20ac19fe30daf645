"""Search over one or more vector stores: permission, expiry, attribute filters, hybrid ranking,
and results with their text — shared by ``POST /vector_stores/{id}/search`` and the file_search tool."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.db.models import FileRecord, VectorStoreChunkRow, VectorStoreFileRow, VectorStoreRow, now_s
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.retrieval import filters as filters_mod
from tuneforge.retrieval.index import IndexCache, default_cache
from tuneforge.retrieval.index import search as index_search


@dataclass
class Result:
    vector_store_id: str
    file_id: str
    filename: str
    score: float
    text: str
    chunk_id: int
    position: int
    attributes: dict | None = None
    meta: dict = field(default_factory=dict)

    def to_wire(self) -> dict:
        return {"file_id": self.file_id, "filename": self.filename, "score": round(self.score, 6),
                "attributes": self.attributes, "content": [{"type": "text", "text": self.text}]}


def get_store(session: Session, project_id: str, store_id: str) -> VectorStoreRow:
    row = session.get(VectorStoreRow, store_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No vector store found with id '{store_id}'.", param="vector_store_id")
    return row


def is_expired(row: VectorStoreRow, now: int | None = None) -> bool:
    return row.expires_at is not None and row.expires_at <= (now or now_s())


def touch(row: VectorStoreRow) -> None:
    """Searching keeps a store alive: ``expires_after`` counts from ``last_active_at``."""
    now = now_s()
    if row.last_active_at is None or now - row.last_active_at >= 60:  # at most one write a minute
        row.last_active_at = now
        if row.expires_after_days:
            row.expires_at = now + row.expires_after_days * 86400


def search_stores(session: Session, project_id: str, store_ids: list[str], queries: list[str], *, limit: int = 10,
                  flt: dict | None = None, score_threshold: float = 0.0, mode: str = "hybrid",
                  cache: IndexCache | None = None) -> list[Result]:
    cache = cache or default_cache()
    queries = [q for q in queries if isinstance(q, str) and q.strip()]
    if not queries:
        raise InvalidRequest("'query' must be a non-empty string or list of strings.", param="query")
    rows = [get_store(session, project_id, sid) for sid in dict.fromkeys(store_ids)]
    query_vectors = None
    results: list[Result] = []
    for row in rows:
        if is_expired(row):
            raise InvalidRequest(f"Vector store {row.id} has expired.", param="vector_store_id")
        touch(row)
        # Searchable files: completed, and the File itself not deleted since.
        files = {f.file_id: f for f in session.scalars(
            select(VectorStoreFileRow).join(FileRecord, FileRecord.id == VectorStoreFileRow.file_id)
            .where(VectorStoreFileRow.vector_store_id == row.id, VectorStoreFileRow.status == "completed"))}
        allowed = {fid for fid, f in files.items()
                   if flt is None or filters_mod.matches(flt, json.loads(f.attributes) if f.attributes else None)}
        index = cache.get(session, row.id, row.revision)
        if query_vectors is None and mode != "keyword" and index.size:
            from tuneforge.retrieval import embeddings

            query_vectors = [embeddings.embed_query(q) for q in queries]  # once for every store
        hits = index_search(index, queries, limit=limit, allowed_files=allowed, mode=mode,
                            query_vectors=query_vectors)
        hits = [h for h in hits if h.score >= score_threshold]
        if not hits:
            continue
        chunks = {c.id: c for c in session.scalars(
            select(VectorStoreChunkRow).where(VectorStoreChunkRow.id.in_([h.chunk_id for h in hits])))}
        for h in hits:
            chunk, vs_file = chunks.get(h.chunk_id), files[h.file_id]
            if chunk is None:
                continue
            results.append(Result(row.id, h.file_id, vs_file.filename, h.score, chunk.text, chunk.id, chunk.position,
                                  json.loads(vs_file.attributes) if vs_file.attributes else None,
                                  json.loads(chunk.meta) if chunk.meta else {}))
    results.sort(key=lambda r: -r.score)
    return results[:limit]
