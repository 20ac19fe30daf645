"""Vector stores, their files and file batches. No FastAPI here.

Counts, usage and status are derived from the files on every read (one GROUP BY), so they can
never drift from the truth. Changes are committed before a file is handed to the ingestor, which
runs in a background thread and needs to see them.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tuneforge.db.models import (
    VectorStoreChunkRow,
    VectorStoreFileBatchRow,
    VectorStoreFileRow,
    VectorStoreRow,
    now_s,
)
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.files import service as files_service
from tuneforge.ids import new_id
from tuneforge.retrieval import filters as filters_mod
from tuneforge.retrieval.chunking import parse_strategy
from tuneforge.retrieval.meta import check_attributes, check_metadata, dumps, loads
from tuneforge.retrieval.search import get_store, is_expired, search_stores

FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")
MAX_BATCH_FILES = 500


def _counts(session: Session, *conditions) -> dict:
    counts = dict.fromkeys(FILE_STATUSES, 0)
    for status, n in session.execute(select(VectorStoreFileRow.status, func.count())
                                     .where(*conditions).group_by(VectorStoreFileRow.status)):
        counts[status] = n
    counts["total"] = sum(counts.values())
    return counts


def store_object(session: Session, row: VectorStoreRow) -> dict:
    counts = _counts(session, VectorStoreFileRow.vector_store_id == row.id)
    usage = session.scalar(select(func.coalesce(func.sum(VectorStoreFileRow.usage_bytes), 0))
                           .where(VectorStoreFileRow.vector_store_id == row.id))
    status = "expired" if is_expired(row) else "in_progress" if counts["in_progress"] else "completed"
    return {"id": row.id, "object": "vector_store", "created_at": row.created_at, "name": row.name,
            "description": row.description, "usage_bytes": int(usage or 0), "file_counts": counts, "status": status,
            "last_active_at": row.last_active_at,
            "expires_after": {"anchor": "last_active_at", "days": row.expires_after_days}
            if row.expires_after_days else None,
            "expires_at": row.expires_at, "metadata": loads(row.metadata_json, {})}


def file_object(row: VectorStoreFileRow) -> dict:
    return {"id": row.file_id, "object": "vector_store.file", "created_at": row.created_at,
            "vector_store_id": row.vector_store_id, "status": row.status, "usage_bytes": row.usage_bytes,
            "last_error": loads(row.last_error), "chunking_strategy": json.loads(row.chunking_strategy),
            "attributes": loads(row.attributes, {})}


def batch_object(session: Session, row: VectorStoreFileBatchRow) -> dict:
    counts = _counts(session, VectorStoreFileRow.vector_store_id == row.vector_store_id,
                     VectorStoreFileRow.batch_id == row.id)
    if row.cancelled_at is not None:
        status = "cancelled"
    elif counts["in_progress"]:
        status = "in_progress"
    elif counts["total"] and counts["failed"] == counts["total"]:
        status = "failed"
    else:
        status = "completed"
    return {"id": row.id, "object": "vector_store.files_batch", "created_at": row.created_at,
            "vector_store_id": row.vector_store_id, "status": status, "file_counts": counts}


def _expiry(value) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("anchor") != "last_active_at":
        raise InvalidRequest("expires_after.anchor must be 'last_active_at'.", param="expires_after.anchor")
    days = value.get("days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        raise InvalidRequest("expires_after.days must be an integer between 1 and 365.", param="expires_after.days")
    return days


def _set_expiry(row: VectorStoreRow, days: int | None) -> None:
    row.expires_after_days = days
    row.expires_at = (row.last_active_at or row.created_at) + days * 86400 if days else None


# ---------------------------------------------------------------- stores

def create_store(session: Session, ingestor, project_id: str, body: dict) -> dict:
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("'name' must be a string.", param="name")
    strategy = parse_strategy(body.get("chunking_strategy"))
    file_ids = body.get("file_ids") or []
    if not isinstance(file_ids, list) or len(file_ids) > MAX_BATCH_FILES:
        raise InvalidRequest(f"'file_ids' must be a list of at most {MAX_BATCH_FILES} file ids.", param="file_ids")
    now = now_s()
    row = VectorStoreRow(id=new_id("vs_"), project_id=project_id, name=name or "", description=body.get("description"),
                         metadata_json=dumps(check_metadata(body.get("metadata"))), created_at=now,
                         last_active_at=now)
    _set_expiry(row, _expiry(body.get("expires_after")))
    session.add(row)
    session.flush()
    queued = [_attach(session, project_id, row.id, fid, strategy, None, None) for fid in file_ids]
    session.commit()
    for fid in queued:
        ingestor.submit(row.id, fid)
    return store_object(session, row)


def retrieve_store(session: Session, project_id: str, store_id: str) -> dict:
    return store_object(session, get_store(session, project_id, store_id))


def list_stores(session: Session, project_id: str, *, limit: int, order: str, after: str | None,
                before: str | None) -> dict:
    check_limit(limit, 100)
    stmt = select(VectorStoreRow).where(VectorStoreRow.project_id == project_id)
    return paginate(session, stmt, VectorStoreRow.id, limit=limit, order=order, after=after, before=before,
                    serialize=lambda r: store_object(session, r))


def modify_store(session: Session, project_id: str, store_id: str, body: dict) -> dict:
    row = get_store(session, project_id, store_id)
    if "name" in body and body["name"] is not None:
        row.name = str(body["name"])
    if "metadata" in body:
        row.metadata_json = dumps(check_metadata(body["metadata"]))
    if "expires_after" in body:
        _set_expiry(row, _expiry(body["expires_after"]))
    session.flush()
    return store_object(session, row)


def delete_store(session: Session, project_id: str, store_id: str) -> dict:
    row = get_store(session, project_id, store_id)
    session.execute(delete(VectorStoreChunkRow).where(VectorStoreChunkRow.vector_store_id == row.id))
    session.execute(delete(VectorStoreFileRow).where(VectorStoreFileRow.vector_store_id == row.id))
    session.execute(delete(VectorStoreFileBatchRow).where(VectorStoreFileBatchRow.vector_store_id == row.id))
    session.delete(row)
    session.commit()
    return {"id": store_id, "object": "vector_store.deleted", "deleted": True}


# ---------------------------------------------------------------- files

def _attach(session: Session, project_id: str, store_id: str, file_id, strategy: dict, attributes: dict | None,
            batch_id: str | None) -> str:
    """Add (or re-add) a file as ``in_progress``; returns its id for the ingestor."""
    if not isinstance(file_id, str):
        raise InvalidRequest("File ids must be strings.", param="file_id")
    file = files_service.get_file(session, project_id, file_id)  # 404 for unknown or another project's file
    row = session.get(VectorStoreFileRow, (store_id, file_id))
    if row is not None:  # re-adding replaces the previous processing
        session.execute(delete(VectorStoreChunkRow).where(VectorStoreChunkRow.vector_store_id == store_id,
                                                          VectorStoreChunkRow.file_id == file_id))
        _bump(session, store_id)
    else:
        row = VectorStoreFileRow(vector_store_id=store_id, file_id=file_id, project_id=project_id)
        session.add(row)
    row.filename, row.batch_id, row.created_at = file.filename, batch_id, now_s()
    row.status, row.usage_bytes, row.chunk_count, row.last_error = "in_progress", 0, 0, None
    row.chunking_strategy, row.attributes = json.dumps(strategy), dumps(attributes)
    session.flush()
    return file_id


def _bump(session: Session, store_id: str) -> None:
    session.execute(update(VectorStoreRow).where(VectorStoreRow.id == store_id)
                    .values(revision=VectorStoreRow.revision + 1))


def create_file(session: Session, ingestor, project_id: str, store_id: str, body: dict) -> dict:
    store = get_store(session, project_id, store_id)
    strategy = parse_strategy(body.get("chunking_strategy"))
    file_id = body.get("file_id")
    if not file_id:
        raise InvalidRequest("Missing required parameter: 'file_id'.", param="file_id")
    _attach(session, project_id, store.id, file_id, strategy, check_attributes(body.get("attributes")), None)
    session.commit()
    ingestor.submit(store.id, file_id)
    return file_object(session.get(VectorStoreFileRow, (store.id, file_id)))


def get_file(session: Session, project_id: str, store_id: str, file_id: str) -> VectorStoreFileRow:
    get_store(session, project_id, store_id)
    row = session.get(VectorStoreFileRow, (store_id, file_id))
    if row is None:
        raise NotFound(f"No file found with id '{file_id}' in vector store '{store_id}'.", param="file_id")
    return row


def list_files(session: Session, project_id: str, store_id: str, *, limit: int, order: str, after: str | None,
               before: str | None, status: str | None, batch_id: str | None = None) -> dict:
    check_limit(limit, 100)
    get_store(session, project_id, store_id)
    if status is not None and status not in FILE_STATUSES:
        raise InvalidRequest(f"'filter' must be one of {', '.join(FILE_STATUSES)}.", param="filter")
    stmt = select(VectorStoreFileRow).where(VectorStoreFileRow.vector_store_id == store_id)
    if status:
        stmt = stmt.where(VectorStoreFileRow.status == status)
    if batch_id:
        stmt = stmt.where(VectorStoreFileRow.batch_id == batch_id)
    return paginate(session, stmt, VectorStoreFileRow.file_id, limit=limit, order=order, after=after, before=before,
                    serialize=file_object)


def update_file(session: Session, project_id: str, store_id: str, file_id: str, body: dict) -> dict:
    row = get_file(session, project_id, store_id, file_id)
    row.attributes = dumps(check_attributes(body.get("attributes")))
    session.flush()
    return file_object(row)


def delete_file(session: Session, project_id: str, store_id: str, file_id: str) -> dict:
    """Removes the file and its chunks from the store (the File itself stays in /v1/files)."""
    row = get_file(session, project_id, store_id, file_id)
    session.execute(delete(VectorStoreChunkRow).where(VectorStoreChunkRow.vector_store_id == store_id,
                                                      VectorStoreChunkRow.file_id == file_id))
    session.delete(row)
    _bump(session, store_id)
    session.commit()
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


def file_content(session: Session, project_id: str, store_id: str, file_id: str) -> dict:
    get_file(session, project_id, store_id, file_id)
    texts = session.scalars(select(VectorStoreChunkRow.text).where(
        VectorStoreChunkRow.vector_store_id == store_id, VectorStoreChunkRow.file_id == file_id)
        .order_by(VectorStoreChunkRow.position)).all()
    return {"object": "vector_store.file_content.page", "data": [{"type": "text", "text": t} for t in texts],
            "has_more": False, "next_page": None}


# ---------------------------------------------------------------- batches

def create_batch(session: Session, ingestor, project_id: str, store_id: str, body: dict) -> dict:
    store = get_store(session, project_id, store_id)
    default_strategy = parse_strategy(body.get("chunking_strategy"))
    default_attrs = check_attributes(body.get("attributes"))
    items = body.get("files")
    if items is None:
        ids = body.get("file_ids")
        if not isinstance(ids, list) or not ids:
            raise InvalidRequest("Provide 'file_ids' or 'files' (a non-empty list).", param="file_ids")
        items = [{"file_id": fid} for fid in ids]
    elif body.get("file_ids"):
        raise InvalidRequest("Provide 'file_ids' or 'files', not both.", param="files")
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH_FILES:
        raise InvalidRequest(f"A batch holds 1 to {MAX_BATCH_FILES} files.", param="files")
    batch = VectorStoreFileBatchRow(id=new_id("vsfb_"), vector_store_id=store.id, project_id=project_id)
    session.add(batch)
    session.flush()
    queued = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest("Each entry of 'files' is an object with a 'file_id'.", param=f"files[{i}]")
        strategy = parse_strategy(item["chunking_strategy"], param=f"files[{i}].chunking_strategy") \
            if item.get("chunking_strategy") else default_strategy
        attrs = check_attributes(item.get("attributes"), f"files[{i}].attributes") \
            if item.get("attributes") is not None else default_attrs
        queued.append(_attach(session, project_id, store.id, item.get("file_id"), strategy, attrs, batch.id))
    session.commit()
    for fid in queued:
        ingestor.submit(store.id, fid)
    return batch_object(session, batch)


def get_batch(session: Session, project_id: str, store_id: str, batch_id: str) -> VectorStoreFileBatchRow:
    get_store(session, project_id, store_id)
    row = session.get(VectorStoreFileBatchRow, batch_id)
    if row is None or row.vector_store_id != store_id:
        raise NotFound(f"No file batch found with id '{batch_id}'.", param="batch_id")
    return row


def cancel_batch(session: Session, project_id: str, store_id: str, batch_id: str) -> dict:
    """Files not yet processed become ``cancelled``; the ingestor skips them (or drops its work)."""
    row = get_batch(session, project_id, store_id, batch_id)
    if row.cancelled_at is None and batch_object(session, row)["status"] == "in_progress":
        row.cancelled_at = now_s()
        session.execute(update(VectorStoreFileRow).where(VectorStoreFileRow.batch_id == row.id,
                                                         VectorStoreFileRow.vector_store_id == store_id,
                                                         VectorStoreFileRow.status == "in_progress")
                        .values(status="cancelled"))
        session.commit()
    return batch_object(session, row)


# ---------------------------------------------------------------- search

def search(session: Session, project_id: str, store_id: str, body: dict, cache=None) -> dict:
    query = body.get("query")
    queries = [query] if isinstance(query, str) else query if isinstance(query, list) else None
    if not queries:
        raise InvalidRequest("Missing required parameter: 'query'.", param="query")
    limit = body.get("max_num_results", 10)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50:
        raise InvalidRequest("max_num_results must be between 1 and 50.", param="max_num_results")
    flt = filters_mod.validate(body["filters"]) if body.get("filters") is not None else None
    ranking = body.get("ranking_options") or {}
    threshold = ranking.get("score_threshold", 0.0) if isinstance(ranking, dict) else 0.0
    if not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise InvalidRequest("ranking_options.score_threshold must be between 0 and 1.",
                             param="ranking_options.score_threshold")
    mode = body.get("tuneforge_mode", "hybrid")  # our extension, for comparisons: hybrid | vector | keyword
    if mode not in ("hybrid", "vector", "keyword"):
        raise InvalidRequest("tuneforge_mode must be 'hybrid', 'vector' or 'keyword'.", param="tuneforge_mode")
    results = search_stores(session, project_id, [store_id], queries, limit=limit, flt=flt,
                            score_threshold=float(threshold), mode=mode, cache=cache)
    return {"object": "vector_store.search_results.page", "search_query": queries,
            "data": [r.to_wire() for r in results], "has_more": False, "next_page": None}
