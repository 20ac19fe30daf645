"""Leases on durable work, so several servers sharing one database act as one service.

A server claims a row (an eval run, a batch, a background response) with one guarded UPDATE —
``... WHERE id = ? AND status IN (...) AND (unowned OR lease expired OR already mine)`` — whose row
count says who won: on SQLite and PostgreSQL alike, two servers never both win. The owner renews
the lease (``lease_expires_at``) from a heartbeat; work whose lease ran out is free for any other
server to take over (or, where it cannot be resumed, to fail). Nothing is taken from a live server.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable

from sqlalchemy import or_, update
from sqlalchemy.orm import Session


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
