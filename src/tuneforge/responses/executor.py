"""Background responses (``background: true``): queued → in_progress → completed, on a small thread pool
owned by the runtime. Each job runs the same ``Generation`` as a foreground response, on its own event
loop; cancelling sets an event it checks between tokens (the row already says ``cancelled``)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from tuneforge.db.models import ResponseRow, now_s

log = logging.getLogger("tuneforge.responses")
WORKERS = 2


class BackgroundResponses:
    def __init__(self, rt, workers: int = WORKERS):
        self.rt = rt
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tuneforge-responses")
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def submit(self, plan) -> None:
        stop = threading.Event()
        with self._lock:
            self._stops[plan.id] = stop
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
                if row is None or row.control == "cancel" or stop.is_set():
                    return  # cancelled (or deleted) while queued
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
        """Background responses a previous process left unfinished are failed (their plan is gone)."""
        with self.rt.db.session() as session:
            rows = list(session.scalars(select(ResponseRow).where(
                ResponseRow.background.is_(True), ResponseRow.status.in_(("queued", "in_progress")))))
            for row in rows:
                row.status, row.completed_at = "failed", now_s()
                row.error = json.dumps({"code": "server_error",
                                        "message": "The server restarted before this response finished."})
            session.commit()
        return len(rows)

    def close(self) -> None:
        with self._lock:
            for stop in self._stops.values():
                stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
