"""Files: metadata rows in the database, bytes in the blob store. No FastAPI here."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tuneforge.db.models import FileRecord, VectorStoreChunkRow, VectorStoreFileRow, VectorStoreRow, now_s
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.ids import new_id
from tuneforge.storage import BlobStore, BlobWriter

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Purposes only the server assigns (job results, assistant outputs).
SYSTEM_PURPOSES = ("fine-tune-results", "assistants_output", "batch_output")

MIN_EXPIRY_S, MAX_EXPIRY_S = 3600, 2592000


def file_object(row: FileRecord) -> dict:
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": row.status,
        "status_details": row.status_details,
        "expires_at": row.expires_at,
    }


def check_purpose(purpose: str | None) -> str:
    if not purpose:
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"Invalid value for 'purpose': '{purpose}'. Supported values are: "
            + ", ".join(f"'{p}'" for p in UPLOAD_PURPOSES) + ".",
            param="purpose",
        )
    return purpose


def check_expiry(anchor: str | None, seconds: str | int | None) -> int | None:
    """``expires_after[anchor]=created_at`` + ``expires_after[seconds]=N`` → seconds, or None."""
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest("expires_after[anchor] must be 'created_at'.", param="expires_after.anchor")
    try:
        value = int(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidRequest("expires_after[seconds] must be an integer.", param="expires_after.seconds") from None
    if not MIN_EXPIRY_S <= value <= MAX_EXPIRY_S:
        raise InvalidRequest(f"expires_after[seconds] must be between {MIN_EXPIRY_S} and {MAX_EXPIRY_S}.",
                             param="expires_after.seconds")
    return value


def create_file(session: Session, store: BlobStore, *, project_id: str, writer: BlobWriter, filename: str,
                purpose: str, expires_in: int | None = None) -> FileRecord:
    """Commit the streamed blob and record it. On any failure the blob is removed again."""
    if purpose not in UPLOAD_PURPOSES and purpose not in SYSTEM_PURPOSES:
        raise InvalidRequest(f"Invalid purpose '{purpose}'.", param="purpose")
    writer.commit()
    try:
        created = now_s()
        row = FileRecord(id=new_id("file-"), project_id=project_id, filename=filename, purpose=purpose,
                         bytes=writer.size, sha256=writer.sha256, blob_key=writer.key, status="processed",
                         created_at=created, expires_at=created + expires_in if expires_in else None)
        session.add(row)
        session.flush()
    except BaseException:
        store.delete(writer.key)
        raise
    return row


def create_file_from_bytes(session: Session, store: BlobStore, *, project_id: str, data: bytes, filename: str,
                           purpose: str) -> FileRecord:
    """For server-made files (job result CSVs and the like)."""
    writer = store.writer()
    try:
        writer.write(data)
    except BaseException:
        writer.abort()
        raise
    return create_file(session, store, project_id=project_id, writer=writer, filename=filename, purpose=purpose)


def _visible(stmt, project_id: str):
    now = now_s()
    return stmt.where(FileRecord.project_id == project_id).where(
        (FileRecord.expires_at.is_(None)) | (FileRecord.expires_at > now)
    )


def get_file(session: Session, project_id: str, file_id: str) -> FileRecord:
    row = session.scalar(_visible(select(FileRecord).where(FileRecord.id == file_id), project_id))
    if row is None:
        raise NotFound(f"No such File object: {file_id}", param="id")
    return row


def list_files(session: Session, project_id: str, *, purpose: str | None, limit: int, order: str,
               after: str | None) -> dict:
    check_limit(limit, 10_000)
    stmt = _visible(select(FileRecord), project_id)
    if purpose:
        stmt = stmt.where(FileRecord.purpose == purpose)
    return paginate(session, stmt, FileRecord.id, limit=limit, order=order, after=after, serialize=file_object)


def _detach_from_vector_stores(session: Session, project_id: str, file_ids: list[str]) -> None:
    """A deleted File leaves every vector store it was in: its chunks stop answering searches and stop
    counting in ``usage_bytes``. (An ingestion still running finds its row gone and stops.)"""
    if not file_ids:
        return
    stores = session.scalars(select(VectorStoreFileRow.vector_store_id).where(
        VectorStoreFileRow.project_id == project_id, VectorStoreFileRow.file_id.in_(file_ids))).all()
    session.execute(delete(VectorStoreChunkRow).where(VectorStoreChunkRow.project_id == project_id,
                                                      VectorStoreChunkRow.file_id.in_(file_ids)))
    session.execute(delete(VectorStoreFileRow).where(VectorStoreFileRow.project_id == project_id,
                                                     VectorStoreFileRow.file_id.in_(file_ids)))
    if stores:  # the revision tells search caches that the store changed
        session.execute(update(VectorStoreRow).where(VectorStoreRow.id.in_(set(stores)))
                        .values(revision=VectorStoreRow.revision + 1))


def delete_file(session: Session, store: BlobStore, project_id: str, file_id: str) -> dict:
    row = get_file(session, project_id, file_id)
    key = row.blob_key
    _detach_from_vector_stores(session, project_id, [file_id])
    session.delete(row)
    session.flush()
    # The row goes first: a crash between the two leaves an orphan blob, never a row pointing nowhere.
    session.commit()
    store.delete(key)
    return {"id": file_id, "object": "file", "deleted": True}


def file_path(store: BlobStore, row: FileRecord) -> Path:
    return store.path(row.blob_key)


def purge_expired(session: Session, store: BlobStore) -> int:
    rows = session.scalars(select(FileRecord).where(FileRecord.expires_at.is_not(None))
                           .where(FileRecord.expires_at <= now_s())).all()
    keys = [r.blob_key for r in rows]
    for r in rows:
        _detach_from_vector_stores(session, r.project_id, [r.id])
        session.delete(r)
    session.commit()
    for key in keys:
        store.delete(key)
    return len(keys)
