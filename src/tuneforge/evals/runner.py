"""The offline runner: one background thread with its own event loop that works through eval runs and
batches, oldest first, one job at a time (its items concurrently, so the engine batches them). Each poll
also turns new fine-tuning checkpoints of jobs with a ``validation_eval`` into eval runs
(``evals.checkpoint_scoring``).

Jobs live in the database, so the runner keeps no state of its own: ``resume()`` at start-up picks up
what a previous process left unfinished, ``wake()`` after a create or cancel saves waiting for the next
poll. Generation requests it makes are background priority: interactive requests are admitted first.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

log = logging.getLogger("tuneforge.evals")
POLL_S = 2.0


class OfflineRunner:
    def __init__(self, rt: Runtime):
        self.rt = rt
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self.jobs_done = 0

    def wake(self) -> None:
        self._ensure_started()
        self._wake.set()

    def resume(self) -> int:
        """Start the thread if there is unfinished work (a restart); returns how many jobs are waiting."""
        from tuneforge.evals import checkpoint_scoring

        pending = len(self._next_jobs())
        with self.rt.db.session() as session:
            scoring = checkpoint_scoring.has_work(session)
        if pending or scoring:
            self.wake()
        return pending

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self, timeout: float = 30) -> None:
        """Stop now: in-flight items are abandoned (they stay pending and run again after a restart) —
        waiting for them could hang, as the engine may already be shut down."""
        self._stop.set()
        self._wake.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop already finished
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._main, name="tuneforge-offline", daemon=True)
                self._thread.start()

    def _next_jobs(self) -> list[tuple[str, str]]:
        from tuneforge.evals import batches, runs

        with self.rt.db.session() as session:
            jobs = [("run", r) for r in runs.unfinished_runs(session)]
            jobs += [("batch", b) for b in batches.unfinished_batches(session)]
        return sorted(jobs, key=lambda job: job[1].split("_", 1)[-1])  # ids sort by creation time

    def _main(self) -> None:
        async def main() -> None:
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
            if self._stop.is_set():
                return
            try:
                await self._work()
            except asyncio.CancelledError:
                pass

        asyncio.run(main())

    async def _work(self) -> None:
        from tuneforge.evals import batches, checkpoint_scoring, execute

        while not self._stop.is_set():
            self._wake.clear()
            try:  # fine-tuning checkpoints to score become eval runs; finished ones get their scores
                await asyncio.to_thread(checkpoint_scoring.schedule, self.rt)
            except Exception:
                log.exception("offline runner: scheduling checkpoint scoring failed")
            try:
                jobs = await asyncio.to_thread(self._next_jobs)
            except Exception:
                log.exception("offline runner: listing jobs failed")
                jobs = []
            failures = 0
            for kind, job_id in jobs:
                if self._stop.is_set():
                    return
                try:
                    if kind == "run":
                        await execute.process_run(self.rt, job_id, self._stop.is_set)
                    else:
                        await batches.process_batch(self.rt, job_id, self._stop.is_set)
                    self.jobs_done += 1
                except Exception:
                    # one broken job must not stop the others; it stays unfinished and is retried next poll
                    log.exception("offline runner: %s %s failed", kind, job_id)
                    failures += 1
            if not jobs or failures == len(jobs):
                await asyncio.to_thread(self._wake.wait, POLL_S)
