"""Background responses (``background: true``): queued → in_progress → completed, on a small thread pool
owned by the runtime. Each job runs the same ``Generation`` as a foreground response, on its own event
loop; cancelling sets an event it checks between tokens (the row already says ``cancelled``).

Several servers may share the database. The server that accepted a background response holds a lease on
it, renewed by a heartbeat (``leases.Heartbeat``), and its row keeps the validated request. When a server
dies, another one takes each of its unfinished background responses over once the lease lapsed (one
guarded UPDATE: of several servers exactly one wins) and runs it again from the start: nothing of the dead
attempt was stored (a response is written once, when it ends), so the result is as if nothing happened.
After ``max_takeovers`` takeovers it fails instead. A server shutting down cleanly hands its unfinished
ones over the same way, at once. A live server's responses are never touched by another server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select, update

from tuneforge.db import leases
from tuneforge.db.models import ResponseRow, now_s

log = logging.getLogger("tuneforge.responses")
WORKERS = 2
UNFINISHED = ("queued", "in_progress")


class BackgroundResponses:
    def __init__(self, rt, workers: int = WORKERS):
        self.rt = rt
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tuneforge-responses")
        self._stops: dict[str, threading.Event] = {}  # the responses submitted here and not finished yet
        self._lock = threading.Lock()
        self.id = leases.new_worker_id()
        self.lease_s = rt.settings.lease_s
        self.max_takeovers = rt.settings.max_takeovers
        self.leases = leases.Heartbeat(rt.db, self.id, self.lease_s, "responses", sweep=self.sweep,
                                       on_lost=self.cancel)

    def submit(self, plan) -> None:
        stop = threading.Event()
        with self._lock:
            self._stops[plan.id] = stop
        self.leases.hold(ResponseRow, plan.id)  # its row was created (or taken over) with this server's lease
        self.leases.start()
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
                if (row is None or row.control == "cancel" or stop.is_set() or row.status != "queued"
                        or row.worker_id != self.id):
                    return  # cancelled (or deleted) while queued; or another server has it now
                row.status = "in_progress"
                session.commit()

            async def work() -> None:
                generation = await Generation(self.rt, plan, should_stop=stop.is_set).start()
                await generation.result()

            asyncio.run(work())
        except Exception:  # noqa: BLE001 - the row says failed (unless another server has it); the log has the rest
            log.exception("background response %s failed", plan.id)
        finally:
            with self._lock:
                self._stops.pop(plan.id, None)
            self.leases.drop(plan.id)

    def _resume(self, response_id: str) -> None:
        """Plan a response taken over from a stopped server again, and run it (in a pool thread)."""
        from tuneforge.responses import service

        stop = threading.Event()
        with self._lock:
            self._stops[response_id] = stop
        try:
            with self.rt.db.session() as session:
                row = session.get(ResponseRow, response_id)
                if row is None or row.worker_id != self.id or row.status != "queued":
                    return
                plan = service.replan(self.rt, session, row, self.id)
        except Exception as exc:  # noqa: BLE001 - e.g. its model was deleted meanwhile: the response fails
            log.exception("background response %s: planning it again failed", response_id)
            message = getattr(exc, "message", None) or "The server had an error while planning it again."
            self._fail(response_id, message)
            with self._lock:
                self._stops.pop(response_id, None)
            self.leases.drop(response_id)
            return
        self._run(plan, stop)

    def recover(self) -> int:
        """At start-up: take over the background responses whose server is gone (lease expired), and keep
        doing so from the heartbeat, which also renews this server's leases. Returns how many it took now."""
        taken = self.sweep()
        self.leases.start()
        return taken

    def sweep(self) -> int:
        """Take over unfinished background responses whose server is gone: lease expired, its process on this
        host ended, or no lease at all (handed over at shutdown, or accepted by a version before leases).
        Each is queued again here (or failed, past ``max_takeovers``, or when it predates stored requests)."""
        now = time.time()
        mine = self.leases.held()
        taken = []
        with self.rt.db.session() as session:
            rows = session.execute(select(ResponseRow.id, ResponseRow.worker_id, ResponseRow.lease_expires_at)
                                   .where(ResponseRow.background.is_(True), ResponseRow.status.in_(UNFINISHED))).all()
            for response_id, owner, lease in rows:
                if response_id in mine:
                    continue
                gone = leases.owner_gone(owner)
                if not (lease is None or lease < now or gone):
                    continue  # its server is alive
                won = session.execute(update(ResponseRow).where(
                    ResponseRow.id == response_id, ResponseRow.status.in_(UNFINISHED),
                    leases.lapsed(ResponseRow, now, owner if gone else None))
                    .values(worker_id=self.id, lease_expires_at=now + self.lease_s, status="queued",
                            takeovers=ResponseRow.takeovers + 1))
                session.commit()
                if not won.rowcount:
                    continue  # another server was first
                row = session.get(ResponseRow, response_id)
                if row.request is None:
                    self._fail(response_id, "The server running this background response stopped before it "
                               "finished, and it was created by a version that cannot run it again elsewhere.")
                elif row.takeovers > self.max_takeovers:
                    self._fail(response_id, f"The servers running this background response stopped "
                               f"{row.takeovers} times before it finished; giving up.")
                else:
                    log.warning("background response %s: its server (%s) stopped; running it again here",
                                response_id, owner)
                    taken.append(response_id)
        for response_id in taken:
            self.leases.hold(ResponseRow, response_id)
            self.leases.start()
            self._pool.submit(self._resume, response_id)
        return len(taken)

    def _fail(self, response_id: str, message: str) -> None:
        with self.rt.db.session() as session:
            session.execute(update(ResponseRow).where(ResponseRow.id == response_id, ResponseRow.worker_id == self.id,
                                                      ResponseRow.status.in_(UNFINISHED)).values(
                status="failed", completed_at=now_s(), worker_id=None, lease_expires_at=None,
                error=json.dumps({"code": "server_error", "message": message})))
            session.commit()
        log.warning("background response %s failed: %s", response_id, message)

    def hand_over(self) -> None:
        """Shutting down: release the unfinished responses this server holds, queued again with no lease, so
        another server (or this one, restarted) runs them at once; what this server still generates for them
        is not saved. Called before the engine stops (whose failing requests would otherwise fail them)."""
        self.leases.close()
        try:
            with self.rt.db.session() as session:
                result = session.execute(update(ResponseRow).where(
                    ResponseRow.worker_id == self.id, ResponseRow.background.is_(True),
                    ResponseRow.status.in_(UNFINISHED)).values(status="queued", worker_id=None,
                                                               lease_expires_at=None))
                session.commit()
            if result.rowcount:
                log.info("handed %d unfinished background response(s) over to other servers", result.rowcount)
        except Exception:  # noqa: BLE001 - the leases then run out and another server takes them over
            log.exception("background responses: handing unfinished ones over at shutdown failed")

    def close(self) -> None:
        self.hand_over()
        with self._lock:
            for stop in self._stops.values():
                stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
