"""Background ingestion: a vector-store file (status ``in_progress``) becomes searchable chunks.

Every step of one file runs outside any database transaction except the last, which writes the
chunks, flips the file to ``completed`` and bumps the store's revision atomically — guarded by
the file still being ``in_progress``, so a file cancelled or deleted meanwhile leaves nothing
behind. A broken file fails alone, with ``last_error`` saying why. Files waiting when the server
stopped are picked up again at start-up (:meth:`Ingestor.resume`).

Several servers may share the database: a file is claimed with a lease (renewed by the ingestor's
heartbeat) before it is processed, and its chunks are written only while the lease is still this
server's — so no file is ingested twice; one whose server died is taken over once its lease ran out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from tuneforge.db import leases
from tuneforge.db.models import FileRecord, VectorStoreChunkRow, VectorStoreFileRow, VectorStoreRow
from tuneforge.retrieval import embeddings
from tuneforge.retrieval.chunking import chunk_sections
from tuneforge.retrieval.keyword import tokenize

log = logging.getLogger("tuneforge.retrieval")

EMBED_BATCH = 16


class _Stopped(Exception):
    """The file left ``in_progress`` (cancelled, deleted) while it was being processed."""


class _OverBudget(Exception):
    """The file used up its time budget (``ingest_file_timeout_s``)."""


@dataclass(frozen=True)
class Budget:
    """Per-file limits: no file may hold an ingestion worker for long, whatever its content."""

    max_bytes: int = 64 * 1024 * 1024
    timeout_s: float = 600.0

    def deadline(self) -> float:
        return time.monotonic() + self.timeout_s

    @staticmethod
    def checker(deadline: float):
        def check() -> None:
            if time.monotonic() > deadline:
                raise _OverBudget
        return check


def _fail(db, vector_store_id: str, file_id: str, code: str, message: str) -> None:
    with db.session() as session:
        row = session.get(VectorStoreFileRow, (vector_store_id, file_id))
        if row is not None and row.status == "in_progress":
            row.status = "failed"
            row.last_error = json.dumps({"code": code, "message": message[:1000]})


def _still_wanted(db, vector_store_id: str, file_id: str) -> bool:
    with db.session() as session:
        status = session.scalar(select(VectorStoreFileRow.status).where(
            VectorStoreFileRow.vector_store_id == vector_store_id, VectorStoreFileRow.file_id == file_id))
        return status == "in_progress"


def read_sections(path: Path, filename: str):
    """The data toolkit picks a reader by extension; blobs have none, so give it a named link."""
    from tuneforge.data import extract_text

    tmp = tempfile.mkdtemp(prefix="tf-ingest-")
    try:
        name = Path(filename).name
        named = Path(tmp) / (name if name not in ("", ".", "..") else "file.txt")  # "..": the folder above
        try:
            os.symlink(path, named)
        except OSError:
            shutil.copyfile(path, named)
        return extract_text(named)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def embedding_text(chunk) -> str:
    """The heading is added when the chunk does not start with it: "what is this about" matters
    to both retrievers when a chunk is the middle of a long section."""
    if chunk.heading and not chunk.text.startswith(chunk.heading[:40]):
        return f"{chunk.heading}\n{chunk.text}"
    return chunk.text


def _file_is(vector_store_id: str, file_id: str):
    return (VectorStoreFileRow.vector_store_id == vector_store_id) & (VectorStoreFileRow.file_id == file_id)


def claim_file(db, vector_store_id: str, file_id: str, worker_id: str, lease_s: float) -> bool:
    """Take a pending file (unowned, lease expired, or already ours); True if this server won it."""
    now = time.time()
    available = leases.available(VectorStoreFileRow, worker_id, now)
    with db.session() as session:
        owner = session.scalar(select(VectorStoreFileRow.worker_id).where(_file_is(vector_store_id, file_id)))
        if leases.owner_gone(owner):
            available = available | (VectorStoreFileRow.worker_id == owner)
        result = session.execute(update(VectorStoreFileRow).where(
            _file_is(vector_store_id, file_id), VectorStoreFileRow.status == "in_progress", available)
            .values(worker_id=worker_id, lease_expires_at=now + lease_s))
        return result.rowcount == 1


def ingest_file(db, store, vector_store_id: str, file_id: str, budget: Budget | None = None, *,
                worker_id: str | None = None, lease_s: float = 30.0) -> str | None:
    """Process one vector-store file; returns its final status (None when it was not pending, or another
    server holds it)."""
    budget = budget or Budget()
    check = Budget.checker(budget.deadline())
    worker_id = worker_id or leases.new_worker_id()
    if not claim_file(db, vector_store_id, file_id, worker_id, lease_s):
        return None
    try:
        return _ingest(db, store, vector_store_id, file_id, budget, check, worker_id)
    except _OverBudget:
        _fail(db, vector_store_id, file_id, "invalid_file",
              f"The file could not be ingested within the server's time budget ({budget.timeout_s:g} s); "
              "split it into smaller files.")
        return "failed"


def _ingest(db, store, vector_store_id: str, file_id: str, budget: Budget, check, worker_id: str) -> str | None:
    with db.session() as session:
        row = session.get(VectorStoreFileRow, (vector_store_id, file_id))
        if row is None or row.status != "in_progress":
            return None
        project_id, strategy = row.project_id, json.loads(row.chunking_strategy)["static"]
        file = session.get(FileRecord, file_id)
        if file is None or file.project_id != project_id:
            missing = True
        else:
            missing, path, filename, size = False, store.path(file.blob_key), file.filename, file.bytes
    if missing:
        _fail(db, vector_store_id, file_id, "invalid_file", f"File {file_id} no longer exists.")
        return "failed"
    if size > budget.max_bytes:
        _fail(db, vector_store_id, file_id, "invalid_file",
              f"{filename}: {size} bytes is more than this server ingests per file ({budget.max_bytes}).")
        return "failed"
    try:
        sections = read_sections(path, filename)
    except Exception as exc:  # noqa: BLE001 - any reader failure is this file's failure, not the worker's
        from tuneforge.data import ReadError

        code = "unsupported_file" if isinstance(exc, ReadError) and "cannot extract" in str(exc) else "invalid_file"
        # Reader messages name the temporary link, and OS errors the server's paths: neither leaves the server.
        message = (str(exc).replace(str(Path(tempfile.gettempdir())), "") if isinstance(exc, ReadError)
                   else f"{filename}: could not be read ({type(exc).__name__})")
        _fail(db, vector_store_id, file_id, code, message)
        return "failed"
    check()
    chunks = chunk_sections(sections, max_tokens=strategy["max_chunk_size_tokens"],
                            overlap=strategy["chunk_overlap_tokens"], check=check)
    if not chunks:
        _fail(db, vector_store_id, file_id, "invalid_file", f"{filename}: no text could be extracted.")
        return "failed"
    texts = [embedding_text(c) for c in chunks]
    shas = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    try:
        vectors = _embed(db, vector_store_id, file_id, project_id, texts, shas, check)
    except _Stopped:
        return None
    terms = [" ".join(tokenize(t)) for t in texts]
    usage = sum(len(chunk.text.encode()) + len(vec) for chunk, vec in zip(chunks, vectors, strict=True))
    with db.session() as session:
        # first the guarded flip (it locks the row): still wanted, and still this server's to finish
        done = session.execute(update(VectorStoreFileRow).where(
            _file_is(vector_store_id, file_id), VectorStoreFileRow.status == "in_progress",
            VectorStoreFileRow.worker_id == worker_id).values(
            status="completed", usage_bytes=usage, chunk_count=len(chunks), last_error=None, worker_id=None,
            lease_expires_at=None))
        if done.rowcount != 1:
            return None
        for chunk, sha, vec, term in zip(chunks, shas, vectors, terms, strict=True):
            session.add(VectorStoreChunkRow(vector_store_id=vector_store_id, project_id=project_id, file_id=file_id,
                                            position=chunk.position, text=chunk.text, tokens=chunk.tokens,
                                            terms=term, meta=json.dumps(chunk.meta(), ensure_ascii=False),
                                            sha256=sha, embedding=vec))
        session.execute(update(VectorStoreRow).where(VectorStoreRow.id == vector_store_id)
                        .values(revision=VectorStoreRow.revision + 1))
    log.info("ingested %s into %s: %d chunks", file_id, vector_store_id, len(chunks))
    return "completed"


def _embed(db, vector_store_id, file_id, project_id, texts: list[str], shas: list[str], check) -> list[bytes]:
    """Embeddings as float32 bytes; a chunk text this project embedded before is not embedded again
    (the same file in two stores, or re-added after a delete)."""
    known: dict[str, bytes] = {}
    with db.session() as session:
        wanted = sorted(set(shas))
        for start in range(0, len(wanted), 500):
            for sha, blob in session.execute(
                    select(VectorStoreChunkRow.sha256, VectorStoreChunkRow.embedding)
                    .where(VectorStoreChunkRow.project_id == project_id,
                           VectorStoreChunkRow.sha256.in_(wanted[start:start + 500]))):
                known.setdefault(sha, blob)
    todo = [i for i, sha in enumerate(shas) if sha not in known]
    for start in range(0, len(todo), EMBED_BATCH):
        check()
        if start and not _still_wanted(db, vector_store_id, file_id):
            raise _Stopped
        batch = todo[start:start + EMBED_BATCH]
        for i, vec in zip(batch, embeddings.embed_passages([texts[i] for i in batch]), strict=True):
            known[shas[i]] = embeddings.to_bytes(vec)
    return [known[sha] for sha in shas]


class Ingestor:
    """Background threads working through pending vector-store files in arrival order.

    The embedder already uses every core for each batch, so few threads are needed; more than one means a
    huge file never holds up the small ones queued after it, and each file has a time and size budget.
    """

    def __init__(self, db, store, *, workers: int = 2, budget: Budget | None = None, lease_s: float = 30.0):
        self.db, self.store = db, store
        self.id, self.lease_s = leases.new_worker_id(), lease_s
        self._active: set[tuple[str, str]] = set()  # files this ingestor holds the lease of
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.workers, self.budget = max(1, workers), budget or Budget()
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0

    def submit(self, vector_store_id: str, file_id: str) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
            if not self._threads:
                for i in range(self.workers):
                    thread = threading.Thread(target=self._run, name=f"tuneforge-ingest-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
        self._queue.put((vector_store_id, file_id))

    def resume(self) -> int:
        """Queue every file left ``in_progress`` that no live server holds (this server stopped while they
        waited, or another one died), and keep doing so from a heartbeat that also renews this server's
        leases; the claim in :func:`ingest_file` decides which server processes each."""
        pending = self._lost_files()
        for vs_id, file_id in pending:
            self.submit(vs_id, file_id)
        with self._lock:
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(target=self._beat, name="tuneforge-ingest-lease", daemon=True)
                self._heartbeat.start()
        return len(pending)

    def _lost_files(self) -> list[tuple[str, str]]:
        """Pending files no live server holds: unowned, lease expired, or owned by a process here that ended."""
        now = time.time()
        with self.db.session() as session:
            rows = session.execute(select(VectorStoreFileRow.vector_store_id, VectorStoreFileRow.file_id,
                                          VectorStoreFileRow.worker_id, VectorStoreFileRow.lease_expires_at)
                                   .where(VectorStoreFileRow.status == "in_progress")
                                   .order_by(VectorStoreFileRow.created_at)).all()
        with self._lock:
            active = set(self._active)
        return [(vs, f) for vs, f, owner, lease in rows if (vs, f) not in active and (
            owner is None or owner == self.id or lease is None or lease < now or leases.owner_gone(owner))]

    def _beat(self) -> None:
        while not self._closed.wait(max(0.05, self.lease_s / 3)):
            try:
                with self._lock:
                    active = set(self._active)
                with self.db.session() as session:
                    for vs_id, file_id in active:
                        session.execute(update(VectorStoreFileRow).where(
                            _file_is(vs_id, file_id), VectorStoreFileRow.worker_id == self.id)
                            .values(lease_expires_at=time.time() + self.lease_s))
                with self._lock:
                    idle = self._pending <= 0
                if idle:  # a busy ingestor takes nothing over: its queue would hold it past the lease
                    for vs_id, file_id in self._lost_files():
                        self.submit(vs_id, file_id)
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the heartbeat
                log.exception("ingestion lease heartbeat failed")

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def close(self, timeout: float = 10) -> None:
        self._closed.set()
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout)
        try:  # hand unfinished files back at once (a late write of ours is then refused: it is redone)
            with self.db.session() as session:
                session.execute(update(VectorStoreFileRow).where(VectorStoreFileRow.worker_id == self.id,
                                                                 VectorStoreFileRow.status == "in_progress")
                                .values(worker_id=None, lease_expires_at=None))
        except Exception:  # noqa: BLE001 - the leases then simply run out
            log.exception("releasing ingestion leases failed")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            vs_id, file_id = item
            with self._lock:
                self._active.add((vs_id, file_id))
            try:
                ingest_file(self.db, self.store, vs_id, file_id, self.budget, worker_id=self.id,
                            lease_s=self.lease_s)
            except Exception as exc:  # noqa: BLE001 - keep the worker alive; the file records the failure
                log.exception("ingesting %s into %s failed", file_id, vs_id)
                try:  # the class only: the text of an unexpected error may name server paths
                    _fail(self.db, vs_id, file_id, "server_error", f"Ingestion failed ({type(exc).__name__}).")
                except Exception:  # noqa: BLE001
                    log.exception("could not record the failure of %s", file_id)
            finally:
                with self._lock:
                    self._active.discard((vs_id, file_id))
                    self._pending -= 1
                    if self._pending <= 0:
                        self._idle.set()


