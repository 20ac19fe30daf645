"""The training worker: validates new jobs, claims queued ones, runs each in a child process.

One loop (a thread inside ``tuneforge serve``, or the main thread of ``tuneforge worker``) does,
every ``worker_poll_s`` or when woken by the API:

1. requeue jobs whose worker is gone (``store.recover_lost``);
2. validate files of jobs in ``validating_files`` with the data toolkit → ``queued`` or ``failed``;
3. apply control requests to its children: cancel = SIGKILL now (well inside the 5 s promise),
   pause = SIGUSR1, the child saves its state at the next step boundary and exits;
4. reap finished children; claim queued jobs while below ``worker_concurrency``;
5. renew the leases of everything it holds.

Steps 3-5 go through ``self.backend`` (``training.backends``): the child processes below (``local``,
the default) or Ray jobs (``ray``), which a restarted worker adopts before step 1.

Nothing here imports torch: the worker stays light and responsive; training lives in the child.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from tuneforge.db.models import FineTuningJobRow, now_s
from tuneforge.db.session import Database
from tuneforge.settings import Settings
from tuneforge.training import store
from tuneforge.training.backends import make_backend
from tuneforge.training.runner import EXIT_STOPPED

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

log = logging.getLogger("tuneforge.worker")
PAUSE_GRACE_S = 300.0  # a pause waits this long for the step in flight, then falls back to the checkpoint
SHUTDOWN_GRACE_S = 10.0


@dataclass
class Child:
    job_id: str
    proc: subprocess.Popen
    log: IO[bytes]
    signalled_at: float | None = None
    started_at: float = field(default_factory=time.time)


class Worker:
    def __init__(self, settings: Settings, db: Database | None = None, *, concurrency: int | None = None,
                 worker_id: str | None = None):
        self.settings = settings
        self.db = db or Database(settings.resolved_database_url)
        self._own_db = db is None
        self.id = worker_id or store.new_worker_id()
        self.concurrency = concurrency or settings.worker_concurrency
        self.children: dict[str, Child] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.backend = make_backend(self)  # where claimed jobs train: local child processes or Ray

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Worker:
        self._thread = threading.Thread(target=self.run, name="tuneforge-worker", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = SHUTDOWN_GRACE_S + 5) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        log.info("worker %s started (concurrency %d)", self.id, self.concurrency)
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception:  # a bad tick (DB locked, ...) must not kill the worker
                    log.exception("worker tick failed")
                self._wake.wait(self.settings.worker_poll_s)
                self._wake.clear()
        finally:
            self.backend.shutdown()
            if self._own_db:
                self.db.dispose()

    def tick(self) -> None:
        self.backend.adopt()  # before lost leases are requeued: a restarted server keeps its Ray jobs
        with self.db.session() as session:
            for job_id in store.recover_lost(session):
                log.warning("requeued job %s (its worker was lost)", job_id)
        self._validate_pending()
        self.backend.watch()
        self._claim()
        with self.db.session() as session:
            self.backend.renew(session, self.settings.worker_lease_s)

    # -- validation ----------------------------------------------------------------------------
    def _validate_pending(self) -> None:
        with self.db.session() as session:
            pending = store.candidates(session, "validating_files", limit=10)
        for job_id in pending:
            with self.db.session() as session:
                if not store.claim(session, job_id, self.id, self.settings.worker_lease_s,
                                   from_status="validating_files", to_status="validating_files"):
                    continue
            try:
                self._validate(job_id)
            except Exception as exc:
                log.exception("validating job %s failed", job_id)
                with self.db.session() as session:
                    store.release(session, job_id, self.id, status_in=("validating_files",), status="failed",
                                  finished_at=now_s(), error=store.dumps({
                                      "code": "validation_error", "param": None,
                                      # the exception's text may name server paths
                                      "message": f"Validating the files failed ({type(exc).__name__}); the "
                                                 "server log has the details."}))

    def _validate(self, job_id: str) -> None:
        from tuneforge.data import check_file
        from tuneforge.files import service as files_service
        from tuneforge.storage import LocalBlobStore

        blobs = LocalBlobStore(self.settings.blobs_dir)
        with self.db.session() as session:
            job = session.get(FineTuningJobRow, job_id)
            files = [("training_file", job.training_file)]
            if job.validation_file:
                files.append(("validation_file", job.validation_file))
            paths = []
            file_ids = dict(files)
            for param, file_id in files:
                try:
                    paths.append((param, files_service.file_path(
                        blobs, files_service.get_file(session, job.project_id, file_id))))
                except Exception:
                    paths.append((param, None))
            method = job.method_type
            store.add_event(session, job_id, "Validating training file: " + job.training_file
                            + (f" and validation file: {job.validation_file}" if job.validation_file else ""),
                            key="validating")
        error = None
        counts = []
        for param, path in paths:
            label = param.replace("_", " ")
            if path is None:
                error = {"code": f"invalid_{param}", "param": param,
                         "message": f"The {label} was deleted before the job started."}
                break
            # blobs have no extension; the report names the file by id, never by its storage path
            report = check_file(path, method=method, assume_jsonl=True).relabel(file_ids[param])
            if not report.ok:
                error = {"code": f"invalid_{param}", "param": param,
                         "message": report.summary_message(file_label=label)}
                break
            counts.append(f"{report.n_valid} {label.split()[0]} examples")
        with self.db.session() as session:
            if error is None:
                if store.release(session, job_id, self.id, status_in=("validating_files",), status="queued"):
                    store.add_event(session, job_id, f"Files validated ({', '.join(counts)}); job queued.",
                                    key="queued")
            elif store.release(session, job_id, self.id, status_in=("validating_files",), status="failed",
                               finished_at=now_s(), error=store.dumps(error)):
                store.add_event(session, job_id, error["message"], level="error", key="failed")

    # -- children --------------------------------------------------------------------------------
    def _claim(self) -> None:
        while (len(self.backend.held()) < self.concurrency and self.backend.accepting()
               and not self._stop.is_set()):
            with self.db.session() as session:
                queued = store.candidates(session, "queued")
                for job_id in queued:
                    owner = self.backend.owner_id(job_id)
                    if store.claim(session, job_id, owner, self.settings.worker_lease_s, from_status="queued",
                                   to_status="running"):
                        break
                else:
                    return
            self.backend.start(job_id, owner)

    def _spawn(self, job_id: str) -> None:
        env = dict(os.environ)
        env["TUNEFORGE_SETTINGS_JSON"] = self.settings.model_dump_json()
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        fh = open(logs / f"{job_id}.log", "ab")
        # Own session: Ctrl-C on the server reaches the worker, which stops children in order.
        proc = subprocess.Popen([sys.executable, "-m", "tuneforge.training.runner", job_id, self.id], env=env,
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.children[job_id] = Child(job_id, proc, fh)
        log.info("job %s: training process %d started", job_id, proc.pid)

    def _watch_children(self) -> None:
        for job_id, child in list(self.children.items()):
            with self.db.session() as session:
                job = session.get(FineTuningJobRow, job_id)
                status, control = (job.status, job.control) if job else ("cancelled", "cancel")
            if status == "cancelled" or control == "cancel":
                self._kill(child)
                self._finish_cancel(job_id)
                continue
            if control == "pause" and child.signalled_at is None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGUSR1)
                child.signalled_at = time.time()
            elif control == "pause" and child.signalled_at and time.time() - child.signalled_at > PAUSE_GRACE_S:
                self._kill(child)  # resumes from the last epoch checkpoint instead
            rc = child.proc.poll()
            if rc is not None:
                self._reap(child, rc, control)

    def _kill(self, child: Child) -> None:
        if child.proc.poll() is None:
            try:
                os.killpg(child.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        child.proc.wait()

    def _finish_cancel(self, job_id: str) -> None:
        child = self.children.pop(job_id)
        child.log.close()
        with self.db.session() as session:
            store.release(session, job_id, self.id, status_in=("running", "cancelled"), status="cancelled",
                          control=None, estimated_finish=None,
                          finished_at=session.get(FineTuningJobRow, job_id).finished_at or now_s())
            store.add_event(session, job_id, "The job was cancelled; its training process was stopped.",
                            key="cancelled")
        log.info("job %s cancelled", job_id)

    def _reap(self, child: Child, rc: int, control: str | None) -> None:
        self.children.pop(child.job_id, None)
        child.log.close()
        job_id = child.job_id
        with self.db.session() as session:
            job = session.get(FineTuningJobRow, job_id)
            step = job.step or 0
            if rc in (EXIT_STOPPED, -signal.SIGKILL) and control == "pause":
                if store.release(session, job_id, self.id, status="paused", control=None, estimated_finish=None):
                    store.add_event(session, job_id, f"The job was paused at step {step}; resume continues "
                                                     "from the saved state.")
            elif rc == EXIT_STOPPED:
                if store.release(session, job_id, self.id, status="queued", estimated_finish=None):
                    store.add_event(session, job_id, f"Training stopped at step {step} because its worker "
                                                     "shut down; the job is queued again.", level="warn")
            elif job is not None and job.status == "running" and job.worker_id == self.id:
                tail = _log_tail(self.settings.data_dir / "logs" / f"{job_id}.log")
                message = f"The training process exited unexpectedly (code {rc})." + (f" Last output: {tail}"
                                                                                       if tail else "")
                store.release(session, job_id, self.id, status="failed", finished_at=now_s(), estimated_finish=None,
                              error=store.dumps({"code": "training_error", "message": message, "param": None}))
                store.add_event(session, job_id, message, level="error", key="failed")
        log.info("job %s: training process exited with %s", job_id, rc)

    def _shutdown_children(self) -> None:
        """Ask every child to save its state and stop; requeue what it leaves behind."""
        for child in self.children.values():
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + SHUTDOWN_GRACE_S
        for child in list(self.children.values()):
            try:
                child.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self._kill(child)
            with self.db.session() as session:
                control = session.get(FineTuningJobRow, child.job_id).control
            if control == "cancel":
                self._finish_cancel(child.job_id)
            else:
                self._reap(child, EXIT_STOPPED, control)


def _log_tail(path, limit: int = 600) -> str:
    try:
        data = path.read_bytes()[-4000:].decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(data[-4:])[-limit:]


def run_standalone(settings: Settings, concurrency: int | None = None) -> None:
    """``tuneforge worker``: run until SIGINT/SIGTERM, then stop children cleanly."""
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    worker = Worker(settings, db, concurrency=concurrency)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: worker.stop(timeout=0))
    worker.run()
    db.dispose()


if __name__ == "__main__":  # python -m tuneforge.training.worker (tests start it this way)
    from tuneforge.logging_setup import configure_logging

    s = Settings.model_validate_json(os.environ["TUNEFORGE_SETTINGS_JSON"]) \
        if "TUNEFORGE_SETTINGS_JSON" in os.environ else Settings()
    configure_logging(s.log_level, s.log_format)
    run_standalone(s)


def start_in_process(rt: Runtime) -> Worker | None:
    """Called from the app's lifespan: a worker thread sharing the app's database, stopped at shutdown."""
    if not rt.settings.worker_in_process:
        return None
    worker = Worker(rt.settings, rt.db).start()
    rt.training_worker = worker

    async def _stop() -> None:
        await asyncio.to_thread(worker.stop)

    rt.add_closer(_stop)
    return worker
