"""Leases of assistants runs across servers sharing one database (``RunExecutor``'s heartbeat calls
:func:`sweep`; its shutdown calls :func:`hand_over`).

A queued run is reserved by the server that created it (so a run streamed from that server runs there); a
run in progress is leased by the server running it. When a server dies, another takes each of its runs in
progress over once the lease lapsed (:func:`_take_over`: one guarded UPDATE, so exactly one server wins) and
queues it again for itself: the dead attempt's in-progress message and step are deleted
(:func:`discard_attempt`) and its completed steps are kept — the run resumes after them (file_search
results and answered function calls are reused, see ``functions.load``). After ``max_takeovers`` takeovers
the run fails instead. Runs waiting in ``requires_action`` are held by no server and never taken over.

These functions are the executor's lease bookkeeping, kept apart from how a run executes; they use its
lock and sets directly.
"""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import delete, select, update

from tuneforge.db import leases
from tuneforge.db.models import MessageRow, RunRow, RunStepRow, now_s

log = logging.getLogger("tuneforge.assistants")


def discard_attempt(session, run_id: str) -> None:
    """Delete what an attempt that will not finish left in progress: its assistant message has no text yet
    (the text is stored when generation ends) and its step describes work that never finished — both go,
    so the thread shows one answer for the run, written by the attempt that finishes."""
    session.execute(delete(MessageRow).where(MessageRow.run_id == run_id, MessageRow.status == "in_progress"))
    session.execute(delete(RunStepRow).where(RunStepRow.run_id == run_id, RunStepRow.status == "in_progress"))


def sweep(executor) -> None:
    """(After the heartbeat renewed this executor's leases on its runs in progress.) Renew the reservation
    of queued runs it was given; expire its runs older than ``run_max_s``; take over runs in progress whose
    server stopped renewing theirs (:func:`_take_over`); take queued runs whose server is gone (lease
    expired, or its process on this host ended)."""
    now = time.time()
    mine = executor.leases.held()
    with executor._lock:
        queued = set(executor._queued) - mine
    adopt = []
    with executor.db.session() as session:
        if queued:
            session.execute(update(RunRow).where(RunRow.id.in_(queued), RunRow.status == "queued",
                                                 leases.available(RunRow, executor.id, now))
                            .values(worker_id=executor.id, lease_expires_at=now + executor.lease_s))
            session.commit()
        active = session.execute(select(RunRow.id, RunRow.worker_id, RunRow.lease_expires_at, RunRow.started_at)
                                 .where(RunRow.status.in_(("in_progress", "cancelling")))).all()
        for run_id, worker, lease, started in active:
            if run_id in mine:
                if started is not None and now - started > executor.max_s:
                    with executor._lock:
                        executor._expire.add(run_id)
                continue
            gone = leases.owner_gone(worker)
            if (lease is None or lease < now or gone) and _take_over(executor, session, run_id, worker, gone, now):
                adopt.append(run_id)
        waiting = session.execute(select(RunRow.id, RunRow.worker_id, RunRow.lease_expires_at, RunRow.created_at)
                                  .where(RunRow.status == "queued")).all()
        for run_id, worker, lease, created in waiting:
            if run_id in queued or run_id in mine or run_id in adopt:
                continue
            unowned_long = worker is None and (created or 0) < now - executor.lease_s  # (rows from before leases)
            if unowned_long or (lease is not None and lease < now) or leases.owner_gone(worker):
                adopt.append(run_id)
    for run_id in adopt:
        executor.submit(run_id)


def _take_over(executor, session, run_id: str, worker: str | None, gone: bool, now: float) -> bool:
    """A run in progress whose server stopped (lease lapsed, or its process here ended): claim it (one
    guarded UPDATE; False if another server was first), discard what the dead attempt left unfinished and
    queue it again, reserved by this server (True) — or end it: ``cancelled`` if a cancel was asked,
    ``failed`` after ``max_takeovers`` takeovers."""
    won = session.execute(update(RunRow).where(RunRow.id == run_id, RunRow.status.in_(("in_progress", "cancelling")),
                                               leases.lapsed(RunRow, now, worker if gone else None))
                          .values(worker_id=executor.id, lease_expires_at=now + executor.lease_s,
                                  takeovers=RunRow.takeovers + 1))
    if not won.rowcount:
        session.rollback()
        return False
    run = session.get(RunRow, run_id)
    discard_attempt(session, run_id)
    if run.control == "cancel" or run.status == "cancelling":
        run.status, run.cancelled_at, run.control = "cancelled", now_s(), None
    elif run.takeovers > executor.max_takeovers:
        run.status, run.failed_at = "failed", now_s()
        run.last_error = json.dumps({"code": "server_error", "message": f"The servers running this run stopped "
                                     f"{run.takeovers} times while it was in progress; giving up."})
    else:
        run.status = "queued"
    if run.status != "queued":
        run.worker_id, run.lease_expires_at = None, None
    session.commit()
    log.warning("run %s: its server (%s) stopped while it was in progress; %s", run_id, worker,
                "running it again here" if run.status == "queued" else run.status)
    return run.status == "queued"


def hand_over(executor) -> None:
    """Shutting down (before the engine stops, whose failing requests would fail them): the runs in
    progress here are queued again and, with the queued ones reserved here, released — another server
    (or this one, restarted) runs them at once. What this server still generates for them is not written."""
    executor._stop.set()
    executor.leases.close()
    with executor._lock:
        queued = set(executor._queued)
    try:
        with executor.db.session() as session:
            running = session.scalars(select(RunRow.id).where(
                RunRow.id.in_(executor.leases.held()), RunRow.worker_id == executor.id,
                RunRow.status == "in_progress")).all()
            for run_id in running:
                executor.leases.give_up(run_id)  # first: its failure, when the engine stops, is not written
                session.execute(update(RunRow).where(RunRow.id == run_id, RunRow.worker_id == executor.id,
                                                     RunRow.status == "in_progress")
                                .values(status="queued", worker_id=None, lease_expires_at=0.0))
                discard_attempt(session, run_id)
            if queued:  # lease 0: free for any server now
                session.execute(update(RunRow).where(RunRow.id.in_(queued), RunRow.worker_id == executor.id,
                                                     RunRow.status == "queued")
                                .values(worker_id=None, lease_expires_at=0.0))
            session.commit()
        if running:
            log.info("handed %d run(s) in progress over to other servers", len(running))
    except Exception:  # noqa: BLE001 - the leases then run out and another server takes them over
        log.exception("runs: handing unfinished ones over at shutdown failed")
