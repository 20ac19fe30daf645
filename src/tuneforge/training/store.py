"""The job queue in the database: claims, leases, events, checkpoints. No FastAPI, no torch.

A claim is a guarded UPDATE (``... WHERE id = ? AND status = 'queued'``) whose row count says who
won, so any number of workers (threads or processes, SQLite or PostgreSQL) can poll the same table.
A claimed job carries a lease that its worker renews; a job whose lease ran out — or whose worker
process on this host is gone — is put back in the queue and resumes from its last saved state.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge.db.models import FineTuningCheckpointRow, FineTuningEventRow, FineTuningJobRow, now_s
from tuneforge.db.session import Database
from tuneforge.ids import new_id

TERMINAL = ("succeeded", "failed", "cancelled")
MAX_LOST = 3  # a job whose worker died this many times is failed rather than retried forever


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _worker_gone(worker_id: str | None) -> bool:
    """True when ``worker_id`` names a process on this host that no longer exists."""
    if not worker_id:
        return False
    host, _, rest = worker_id.partition(":")
    pid_s = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_s.isdigit():
        return False
    try:
        os.kill(int(pid_s), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def loads(text: str | None, default=None):
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def dumps(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


# -- events --------------------------------------------------------------------------------------
def add_event(session: Session, job_id: str, message: str, *, level: str = "info", type: str = "message",
              data: dict | None = None, key: str | None = None) -> bool:
    """Record an event; one with a ``key`` already recorded for this job is skipped (returns False)."""
    if key is not None and session.scalar(select(FineTuningEventRow.seq).where(
            FineTuningEventRow.job_id == job_id, FineTuningEventRow.dedup_key == key)) is not None:
        return False
    session.add(FineTuningEventRow(id=new_id("ftevent-"), job_id=job_id, level=level, type=type,
                                   message=message, data=dumps(data), dedup_key=key, created_at=now_s()))
    session.flush()
    return True


def record_event(db: Database, job_id: str, message: str, **kw) -> bool:
    """``add_event`` in its own transaction; a concurrent duplicate loses quietly."""
    try:
        with db.session() as session:
            return add_event(session, job_id, message, **kw)
    except IntegrityError:
        return False


def metrics_rows(session: Session, job_id: str) -> list[dict]:
    rows = session.scalars(select(FineTuningEventRow.data).where(
        FineTuningEventRow.job_id == job_id, FineTuningEventRow.type == "metrics")).all()
    out = [loads(r, {}) for r in rows]
    return sorted((r for r in out if "step" in r), key=lambda r: r["step"])


def results_csv(rows: list[dict]) -> str:
    def cell(v):
        return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))

    lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
    for r in rows:
        lines.append(",".join(cell(r.get(k)) for k in ("step", "train_loss", "train_mean_token_accuracy",
                                                      "valid_loss", "valid_mean_token_accuracy")))
    return "\n".join(lines) + "\n"


# -- claims and leases ---------------------------------------------------------------------------
def claim(session: Session, job_id: str, worker_id: str, lease_s: float, *, from_status: str,
          to_status: str) -> bool:
    now = time.time()
    stmt = update(FineTuningJobRow).where(FineTuningJobRow.id == job_id, FineTuningJobRow.status == from_status)
    if from_status == "validating_files":  # unowned, or its validator's lease ran out
        stmt = stmt.where((FineTuningJobRow.worker_id.is_(None)) | (FineTuningJobRow.lease_expires_at < now))
    result = session.execute(stmt.values(status=to_status, worker_id=worker_id, lease_expires_at=now + lease_s,
                                         updated_at=now_s()))
    session.commit()
    return result.rowcount == 1


def candidates(session: Session, status: str, limit: int = 5) -> list[str]:
    return list(session.scalars(select(FineTuningJobRow.id).where(FineTuningJobRow.status == status)
                                .order_by(FineTuningJobRow.created_at, FineTuningJobRow.id).limit(limit)).all())


def renew(session: Session, worker_id: str, job_ids: list[str], lease_s: float) -> None:
    if job_ids:
        session.execute(update(FineTuningJobRow).where(FineTuningJobRow.id.in_(job_ids),
                                                       FineTuningJobRow.worker_id == worker_id)
                        .values(lease_expires_at=time.time() + lease_s))


def release(session: Session, job_id: str, worker_id: str, *, status_in: tuple[str, ...] = ("running",),
            **values) -> bool:
    """Update a job this worker owns (in one of ``status_in``) and drop its lease; False if it is no
    longer ours — taken over after a lost lease, or cancelled meanwhile."""
    values.setdefault("worker_id", None)
    values.setdefault("lease_expires_at", None)
    values["updated_at"] = now_s()
    result = session.execute(update(FineTuningJobRow).where(FineTuningJobRow.id == job_id,
                                                            FineTuningJobRow.worker_id == worker_id,
                                                            FineTuningJobRow.status.in_(status_in))
                             .values(**values))
    return result.rowcount == 1


def recover_lost(session: Session) -> list[str]:
    """Requeue running jobs whose worker is gone (expired lease, or a dead process on this host)."""
    now = time.time()
    rows = session.scalars(select(FineTuningJobRow).where(FineTuningJobRow.status == "running")).all()
    recovered = []
    for job in rows:
        expired = job.lease_expires_at is None or job.lease_expires_at < now
        if not expired and not _worker_gone(job.worker_id):
            continue
        lost = job.attempts + 1
        last = session.scalar(select(func.max(FineTuningCheckpointRow.step_number))
                              .where(FineTuningCheckpointRow.job_id == job.id))
        if job.control == "cancel":
            values = {"status": "cancelled", "finished_at": now_s(), "control": None}
            message = "The job was cancelled while its worker was gone."
        elif job.control == "pause":
            values = {"status": "paused", "control": None}
            message = "The job was paused while its worker was gone; resume continues from the last checkpoint."
        elif lost > MAX_LOST:
            values = {"status": "failed", "finished_at": now_s(),
                      "error": dumps({"code": "worker_lost", "param": None,
                                      "message": f"The training process was lost {lost} times; giving up."})}
            message = f"The training process was lost {lost} times; the job failed."
        else:
            values = {"status": "queued"}
            where = f"checkpoint step {last}" if last else "step 0 (no checkpoint yet)"
            message = f"The worker running this job stopped; the job is queued again and resumes from {where}."
        res = session.execute(update(FineTuningJobRow).where(FineTuningJobRow.id == job.id,
                                                             FineTuningJobRow.worker_id == job.worker_id,
                                                             FineTuningJobRow.status == "running")
                              .values(worker_id=None, lease_expires_at=None, attempts=lost,
                                      updated_at=now_s(), **values))
        if res.rowcount == 1:
            add_event(session, job.id, message, level="warn" if values["status"] == "queued" else "error"
                      if values["status"] == "failed" else "info")
            recovered.append(job.id)
    session.commit()
    return recovered


def get_job(session: Session, job_id: str) -> FineTuningJobRow | None:
    return session.get(FineTuningJobRow, job_id)
