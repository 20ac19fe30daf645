"""The offline runner: one background thread with its own event loop that works through eval runs and
batches, oldest first, one job at a time (its items concurrently, so the engine batches them). It polls
from start-up on (one cheap query every few seconds), as another server's job may need taking over. Each
poll also turns new fine-tuning checkpoints of jobs with a ``validation_eval`` into eval runs
(``evals.checkpoint_scoring``).

Jobs live in the database, so the runner keeps no state of its own: ``resume()`` at start-up picks up
what a previous process left unfinished, ``wake()`` after a create or cancel saves waiting for the next
poll. Generation requests it makes are background priority: interactive requests are admitted first.

Several servers may share the database: a job is claimed with a lease (``tuneforge.db.leases``) that a
heartbeat thread renews, so exactly one server works on it; a job whose server died is taken over once
its lease ran out, and resumes at its first pending item (finished items are one commit each and are
never redone). A server that loses a lease (it stalled past it and another took over) stops that job.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from tuneforge.db import leases

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
        self.id = leases.new_worker_id()
        self.lease_s = rt.settings.lease_s
        # the leases of the jobs it works on; a job another server took over is "lost": stop working on it
        self.leases = leases.Heartbeat(rt.db, self.id, self.lease_s, "offline")

    def wake(self) -> None:
        self._ensure_started()
        self._wake.set()

    def resume(self) -> int:
        """At start-up: start polling — for what a previous process left unfinished, and for jobs of other
        servers sharing the database, taken over if one dies. Returns how many jobs it can take now."""
        pending = len(self._next_jobs())
        self.wake()
        return pending

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self, timeout: float = 30) -> None:
        """Stop now: in-flight items are abandoned (they stay pending and run again after a restart) —
        waiting for them could hang, as the engine may already be shut down."""
        self._stop.set()
        self.leases.close()
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
                self.leases.start()

    def _next_jobs(self) -> list[tuple[str, str]]:
        """Unfinished jobs this server may claim (unowned, lease expired, or its own), oldest first."""
        from tuneforge.evals import batches, runs

        with self.rt.db.session() as session:
            jobs = [("run", r) for r in runs.unfinished_runs(session, available_to=self.id)]
            jobs += [("batch", b) for b in batches.unfinished_batches(session, available_to=self.id)]
        return sorted(jobs, key=lambda job: job[1].split("_", 1)[-1])  # ids sort by creation time

    # -- leases ---------------------------------------------------------------------------------------
    def _claim(self, row_type, job_id: str, statuses) -> bool:
        with self.rt.db.session() as session:
            won = leases.claim(session, row_type, job_id, self.id, self.lease_s, statuses=statuses)
        if won:
            self.leases.hold(row_type, job_id)
        return won

    def _release(self, job_id: str) -> None:
        row_type = self.leases.drop(job_id)
        if row_type is not None:
            with self.rt.db.session() as session:
                leases.release(session, row_type, job_id, self.id)

    def _stopping_for(self, job_id: str):
        return lambda: self._stop.is_set() or self.leases.lost(job_id)

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
        from tuneforge.db.models import BatchRow, EvalRunRow
        from tuneforge.evals import batches, checkpoint_scoring, execute, runs

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
            worked = 0
            for kind, job_id in jobs:
                if self._stop.is_set():
                    return
                row_type, statuses = (EvalRunRow, runs.UNFINISHED) if kind == "run" else (BatchRow,
                                                                                          batches.UNFINISHED)
                try:
                    if not await asyncio.to_thread(self._claim, row_type, job_id, statuses):
                        continue  # another server holds it (or it just finished)
                    if kind == "run":
                        await execute.process_run(self.rt, job_id, self._stopping_for(job_id))
                    else:
                        await batches.process_batch(self.rt, job_id, self._stopping_for(job_id))
                    self.jobs_done += 1
                    worked += 1
                except Exception:
                    # one broken job must not stop the others; it stays unfinished and is retried next poll
                    log.exception("offline runner: %s %s failed", kind, job_id)
                finally:
                    try:  # done, stopped or failed: another server may take what is left at once
                        await asyncio.to_thread(self._release, job_id)
                    except Exception:  # noqa: BLE001 - the lease then simply runs out
                        log.exception("offline runner: releasing %s failed", job_id)
            if not worked:  # nothing to do, all of it failed, or other servers won it: poll again later
                await asyncio.to_thread(self._wake.wait, POLL_S)
