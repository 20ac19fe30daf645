"""Alembic migrations match the models; the blob store writes atomically; ids sort by time."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from tuneforge.db.migrate import upgrade_to_head
from tuneforge.db.models import Base


def test_upgrade_head_on_empty_sqlite_matches_models(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade_to_head(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"projects", "api_keys", "files", "base_models", "fine_tuned_models", "alembic_version"} <= tables
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    upgrade_to_head(engine)  # idempotent
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    from tuneforge.db.session import Database

    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_blob_writer_is_atomic(tmp_path):
    from tuneforge.storage import LocalBlobStore

    store = LocalBlobStore(tmp_path / "blobs")
    writer = store.writer()
    writer.write(b"hello ")
    writer.write(b"world")
    assert not store.exists(writer.key)  # invisible until commit
    writer.commit()
    assert store.path(writer.key).read_bytes() == b"hello world"
    assert writer.size == 11 and len(writer.sha256) == 64

    aborted = store.writer()
    aborted.write(b"partial")
    aborted.abort()
    assert not store.exists(aborted.key) and store.partial_count() == 0


def test_crash_leftovers_are_cleaned_only_when_stale(tmp_path):
    import os
    import time

    from tuneforge.storage import LocalBlobStore

    store = LocalBlobStore(tmp_path / "blobs")
    live = store.writer()
    live.write(b"still uploading")
    stale = store.writer()
    stale.write(b"crashed")
    old = time.time() - 3600
    os.utime(store.root / "tmp" / f"{stale.key}.part", (old, old))
    assert store.cleanup_partials() == 1
    assert store.partial_count() == 1  # the live one stays
    live.commit()
    assert store.exists(live.key)


@pytest.mark.parametrize("key", ["../etc/passwd", "abc/def", "", "ABCDEF"])
def test_blob_keys_from_outside_are_rejected(tmp_path, key):
    from tuneforge.errors import NotFound
    from tuneforge.storage import LocalBlobStore

    with pytest.raises(NotFound):
        LocalBlobStore(tmp_path).path(key)


def test_ids_sort_by_creation():
    from tuneforge.ids import new_id

    ids = [new_id("file-") for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i.startswith("file-") and len(i) == 27 for i in ids)
