"""Vector-store ingestion with several servers on one database: a file is claimed with a lease before it is
processed, and its chunks are written only by the lease holder — so a file is never ingested twice, and one
whose server died is taken over once its lease ran out."""

from __future__ import annotations

import time

from kbhelpers import WARRANTY, app_client, upload, wait_store
from sqlalchemy import func, select, update


def test_a_file_held_by_a_live_server_is_left_alone_until_its_lease_runs_out(settings):
    from tuneforge.db.models import VectorStoreChunkRow, VectorStoreFileRow
    from tuneforge.db.session import Database
    from tuneforge.retrieval.ingest import claim_file, ingest_file
    from tuneforge.storage import LocalBlobStore

    with app_client(settings) as client:
        fid = upload(client, "warranty.md", WARRANTY)
        store = client.vector_stores.create(file_ids=[fid])
        wait_store(client, store.id)
    db = Database(settings.resolved_database_url)
    blobs = LocalBlobStore(settings.blobs_dir)
    key = (VectorStoreFileRow.vector_store_id == store.id) & (VectorStoreFileRow.file_id == fid)

    def chunks() -> int:
        with db.session() as session:
            return session.scalar(select(func.count()).select_from(VectorStoreChunkRow)
                                  .where(VectorStoreChunkRow.file_id == fid))

    def held_by(owner: str, lease_in_s: float) -> None:  # as if another server were ingesting it again
        with db.session() as session:
            session.query(VectorStoreChunkRow).filter(VectorStoreChunkRow.file_id == fid).delete()
            session.execute(update(VectorStoreFileRow).where(key).values(
                status="in_progress", worker_id=owner, lease_expires_at=time.time() + lease_in_s))

    try:
        held_by("elsewhere:1:live", 30)
        assert not claim_file(db, store.id, fid, "here:2:me", 30)
        assert ingest_file(db, blobs, store.id, fid, worker_id="here:2:me") is None  # not ours: nothing done
        assert chunks() == 0

        held_by("elsewhere:1:dead", -1)  # its lease ran out: taken over, ingested once
        assert ingest_file(db, blobs, store.id, fid, worker_id="here:2:me") == "completed"
        n = chunks()
        assert n > 0
        with db.session() as session:
            row = session.scalar(select(VectorStoreFileRow).where(key))
            assert row.status == "completed" and row.chunk_count == n and row.worker_id is None
        assert ingest_file(db, blobs, store.id, fid, worker_id="here:3:late") is None  # finished: not redone
        assert chunks() == n
    finally:
        db.dispose()
