"""Background responses (``background: true``): queued → in_progress → completed, on a small thread pool
owned by the runtime. Each job runs the same ``Generation`` as a foreground response, on its own event
loop; cancelling sets an event it checks between tokens (the row already says ``cancelled``).

Several servers may share the database. The plan of a background response (its prompt, tools, engine
request) lives only in the memory of the server that accepted it, so no other server can resume it: the
server holds a lease on each one it accepted, renewed by a heartbeat, and any server fails a background
response whose lease ran out (its server died) with a message saying so. A live server's responses are
never touched by another server starting up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import or_, select, update

from tuneforge.db import leases
from tuneforge.db.models import ResponseRow, now_s

log = logging.getLogger("tuneforge.responses")
WORKERS = 2
LOST_MESSAGE = ("The server running this background response stopped or restarted before it finished; a "
                "background response cannot be resumed on another server. Create it again.")


class BackgroundResponses:
    def __init__(self, rt, workers: int = WORKERS):
        self.rt = rt
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tuneforge-responses")
        self._stops: dict[str, threading.Event] = {}  # also the set of responses this server holds the lease of
        self._lock = threading.Lock()
        self.id = leases.new_worker_id()
        self.lease_s = rt.settings.lease_s
        self._closed = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def submit(self, plan) -> None:
        stop = threading.Event()
        with self._lock:
            self._stops[plan.id] = stop  # its row was created with this server's lease (service.plan)
        self._start_heartbeat()
        self._pool.submit(self._run, plan, stop)

    def cancel(self, response_id: str) -> None:
        with self._lock:
            stop = self._stops.get(response_id)
        if stop is not None:
            stop.set()

    def _run(self, plan, stop: threading.Event) -> None:
        from tuneforge.responses.service import Generation

        try:
            with self.rt.db.session() as session:
                row = session.get(ResponseRow, plan.id)
                if row is None or row.control == "cancel" or stop.is_set() or row.status != "queued":
                    return  # cancelled (or deleted) while queued; or failed as lost (this server stalled)
                row.status = "in_progress"
                session.commit()

            async def work() -> None:
                generation = await Generation(self.rt, plan, should_stop=stop.is_set).start()
                await generation.result()

            asyncio.run(work())
        except Exception:  # noqa: BLE001 - the row says failed; the log has the rest
            log.exception("background response %s failed", plan.id)
        finally:
            with self._lock:
                self._stops.pop(plan.id, None)

    def recover(self) -> int:
        """At start-up: fail the background responses whose server is gone (lease expired), and keep
        doing so from a heartbeat, which also renews this server's leases. Returns how many failed now."""
        failed = self.sweep()
        self._start_heartbeat()
        return failed

    def _start_heartbeat(self) -> None:
        with self._lock:
            if self._heartbeat is None and not self._closed.is_set():
                self._heartbeat = threading.Thread(target=self._beat, name="tuneforge-responses-lease", daemon=True)
                self._heartbeat.start()

    def _beat(self) -> None:
        while not self._closed.wait(max(0.05, self.lease_s / 3)):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a database hiccup must not stop the heartbeat
                log.exception("background responses: lease heartbeat failed")

    def sweep(self) -> int:
        """Renew this server's leases; fail background responses whose server is gone: lease expired, its
        process on this host ended, or no lease at all (accepted by a version before leases)."""
        now = time.time()
        with self._lock:
            mine = list(self._stops)
        with self.rt.db.session() as session:
            if mine:
                session.execute(update(ResponseRow).where(ResponseRow.id.in_(mine), ResponseRow.worker_id == self.id)
                                .values(lease_expires_at=now + self.lease_s))
            unfinished = (ResponseRow.background.is_(True), ResponseRow.status.in_(("queued", "in_progress")))
            owners = session.scalars(select(ResponseRow.worker_id).where(
                *unfinished, ResponseRow.lease_expires_at >= now).distinct()).all()
            gone = [owner for owner in owners if leases.owner_gone(owner)]
            lost = or_(ResponseRow.lease_expires_at.is_(None), ResponseRow.lease_expires_at < now,
                       ResponseRow.worker_id.in_(gone))
            result = session.execute(update(ResponseRow).where(*unfinished, lost).values(
                status="failed", completed_at=now_s(), worker_id=None, lease_expires_at=None,
                error=json.dumps({"code": "server_error", "message": LOST_MESSAGE})))
        if result.rowcount:
            log.warning("failed %d background response(s) whose server stopped", result.rowcount)
        return result.rowcount

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for stop in self._stops.values():
                stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:  # what this server leaves unfinished fails now, not a lease later (nobody can resume it)
            with self.rt.db.session() as session:
                session.execute(update(ResponseRow).where(
                    ResponseRow.worker_id == self.id, ResponseRow.background.is_(True),
                    ResponseRow.status.in_(("queued", "in_progress"))).values(
                    status="failed", completed_at=now_s(), worker_id=None, lease_expires_at=None,
                    error=json.dumps({"code": "server_error", "message": LOST_MESSAGE})))
        except Exception:  # noqa: BLE001 - the lease then runs out and another server fails them
            log.exception("background responses: failing unfinished ones at shutdown failed")
