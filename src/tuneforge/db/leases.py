"""Leases on durable work, so several servers sharing one database act as one service.

A server claims a row (an eval run, a batch, a background response) with one guarded UPDATE —
``... WHERE id = ? AND status IN (...) AND (unowned OR lease expired OR already mine)`` — whose row
count says who won: on SQLite and PostgreSQL alike, two servers never both win. The owner renews
the lease (``lease_expires_at``) from a heartbeat; work whose lease ran out is free for any other
server to take over. Nothing is taken from a live server.

:class:`Heartbeat` is the timer thread every executor of leased work uses: it renews the leases its server
holds, reports the ones it lost, and then runs the executor's ``sweep`` (taking over other servers' work
whose lease lapsed).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

log = logging.getLogger("tuneforge.leases")


def new_worker_id() -> str:
    """``host:pid:random``: unique per process, and readable in the database when debugging."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_gone(worker_id: str | None) -> bool:
    """True when ``worker_id`` names a process on this host that no longer exists (a restart on one box
    need not wait for the lease to run out)."""
    if not worker_id:
        return False
    host, _, rest = worker_id.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def available(row_type, worker_id: str, now: float | None = None):
    """The WHERE clause of rows ``worker_id`` may claim: unowned, expired, or its own."""
    now = time.time() if now is None else now
    return or_(row_type.worker_id.is_(None), row_type.lease_expires_at.is_(None),
               row_type.lease_expires_at < now, row_type.worker_id == worker_id)


def lapsed(row_type, now: float | None = None, owner: str | None = None):
    """The WHERE clause of rows whose server stopped: no lease, an expired one, or (``owner``, a process on
    this host that ended: see :func:`owner_gone`) that owner's."""
    now = time.time() if now is None else now
    clause = or_(row_type.lease_expires_at.is_(None), row_type.lease_expires_at < now)
    return clause if owner is None else or_(clause, row_type.worker_id == owner)


def claim(session: Session, row_type, row_id: str, worker_id: str, lease_s: float, *,
          statuses: Iterable[str]) -> bool:
    """Take ``row_id`` (if still in one of ``statuses`` and available); commits; True if this server won."""
    now = time.time()
    result = session.execute(update(row_type).where(row_type.id == row_id, row_type.status.in_(tuple(statuses)),
                                                     available(row_type, worker_id, now))
                             .values(worker_id=worker_id, lease_expires_at=now + lease_s))
    session.commit()
    return result.rowcount == 1


def renew(session: Session, row_type, row_ids: Iterable[str], worker_id: str, lease_s: float) -> set[str]:
    """Extend the leases this server still holds; returns the ids it no longer holds (taken over, or
    finished and released)."""
    ids = set(row_ids)
    lost = set()
    for row_id in ids:  # one statement each: the row count says which ones are still ours
        result = session.execute(update(row_type).where(row_type.id == row_id, row_type.worker_id == worker_id)
                                 .values(lease_expires_at=time.time() + lease_s))
        if result.rowcount != 1:
            lost.add(row_id)
    session.commit()
    return lost


def release(session: Session, row_type, row_id: str, worker_id: str) -> bool:
    """Drop this server's lease (done, or shutting down: another server may take it at once)."""
    result = session.execute(update(row_type).where(row_type.id == row_id, row_type.worker_id == worker_id)
                             .values(worker_id=None, lease_expires_at=None))
    session.commit()
    return result.rowcount == 1


class Heartbeat:
    """The leases one server holds, renewed from a daemon thread every third of the lease.

    ``hold``/``drop`` say which rows (of any leased table) are held. Each beat renews them (one guarded
    UPDATE each); a row whose renewal fails was taken over by another server (this one stalled past its
    lease) or finished and released: it is dropped, remembered as lost (``lost(row_id)``, until it is held or
    dropped again) and passed to ``on_lost``. Then ``sweep`` runs: the executor's look at other servers' work
    (take over what lapsed). A failing beat is logged and retried at the next one: a database hiccup must not
    stop the heartbeat.
    """

    def __init__(self, db, worker_id: str, lease_s: float, name: str, *,
                 sweep: Callable[[], object] | None = None, on_lost: Callable[[str], None] | None = None):
        self.db, self.id, self.lease_s, self.name = db, worker_id, lease_s, name
        self._sweep, self._on_lost = sweep, on_lost
        self._held: dict[str, type] = {}
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval_s(self) -> float:
        return max(0.05, self.lease_s / 3)

    def hold(self, row_type, row_id: str) -> None:
        with self._lock:
            self._held[row_id] = row_type
            self._lost.discard(row_id)

    def drop(self, row_id: str):
        """Stop renewing ``row_id``; returns its row type if it was held."""
        with self._lock:
            self._lost.discard(row_id)
            return self._held.pop(row_id, None)

    def give_up(self, row_id: str) -> None:
        """Stop renewing ``row_id`` and count it as lost (handed over to other servers at shutdown)."""
        with self._lock:
            if self._held.pop(row_id, None) is not None:
                self._lost.add(row_id)

    def held(self) -> set[str]:
        with self._lock:
            return set(self._held)

    def lost(self, row_id: str) -> bool:
        with self._lock:
            return row_id in self._lost

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self) -> None:
        """Start the thread (once; never after ``close``)."""
        with self._lock:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._run, name=f"tuneforge-{self.name}-lease", daemon=True)
                self._thread.start()

    def close(self) -> None:
        self._closed.set()

    def beat(self) -> None:
        """Renew, then sweep (what the thread does each interval)."""
        with self._lock:
            held = dict(self._held)
        if held:
            with self.db.session() as session:
                lost: set[str] = set()
                for row_type in set(held.values()):
                    lost |= renew(session, row_type, [i for i, t in held.items() if t is row_type], self.id,
                                  self.lease_s)
            with self._lock:  # what was dropped meanwhile (finished) is not lost
                lost = {i for i in lost if self._held.get(i) is held[i]}
                for row_id in lost:
                    del self._held[row_id]
                self._lost |= lost
            for row_id in lost:
                log.warning("%s: %s is no longer held by this server (taken over by another)", self.name, row_id)
                if self._on_lost is not None:
                    self._on_lost(row_id)
        if self._sweep is not None:
            self._sweep()

    def _run(self) -> None:
        while not self._closed.wait(self.interval_s):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the heartbeat
                log.exception("%s: lease heartbeat failed", self.name)
