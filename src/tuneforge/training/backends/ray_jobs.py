"""The Ray backend: each fine-tuning job runs as a Ray job (Ray Jobs API), submission id = the job id.

Each run of a job gets its own submission id: the job id for the first, ``<job id>-<nonce>`` for a
run resubmitted after a pause or a lost run (Ray 2.60 cannot reuse an id: a deleted job's monitor
marks the new job with the same id FAILED). The claim's owner is ``ray:<submission id>``; the
training process writes under that owner only, so a stale run can never write to the job again.

The entrypoint is the local backend's command, ``<python> -m tuneforge.training.runner JOB OWNER``,
with this server's settings in the runtime env, so the training process writes events, metrics,
checkpoints and the final state to the same database and data folder as a local one. This module
only submits, follows and stops:

- cancel → ``stop_job`` (SIGTERM; the runner stops at the step boundary, Ray SIGKILLs it after
  ``STOP_WAIT_S``), then the job is settled ``cancelled``;
- pause → ``stop_job``: the runner saves its state at the step boundary and exits; the job is
  ``paused``; resume requeues it and the next claim resubmits (the runner resumes from the
  saved state or the last checkpoint, as locally);
- a run Ray ends without our asking (FAILED, STOPPED, lost) → the job is requeued and resumes from its
  last checkpoint, at most ``store.MAX_LOST`` times;
- a job asking for ``distributed.num_workers`` > 1 runs ``tuneforge.training.ray_train`` instead: a
  Ray Train ``TorchTrainer`` with that many workers (``cpus_per_worker`` CPUs each; the driver itself
  reserves none), whose rank 0 writes exactly what the runner writes;
- a restarted server *adopts* the running Ray jobs it finds (``adopt``, before lost leases are
  requeued): it renews their leases and follows them; it neither fails nor resubmits them. A
  stopping server leaves its Ray jobs running.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneforge.db.models import FineTuningCheckpointRow, FineTuningJobRow, now_s
from tuneforge.db.session import Database
from tuneforge.settings import Settings
from tuneforge.training import store

log = logging.getLogger("tuneforge.worker.ray")
OWNER_PREFIX = "ray:"
ACTIVE = ("PENDING", "RUNNING")
# Ray's stop_job sends SIGTERM, then SIGKILL after this long (Ray's default, 3 s, is shorter than a
# step of a real model): the runner saves its pause state at the step boundary, as locally.
STOP_WAIT_S = 60
STOP_GRACE_S = STOP_WAIT_S + 15.0  # a stopped run Ray still reports active after this long is settled anyway
UNREACHABLE_BACKOFF_S = 10.0
# passed to the training process as they are in this server's environment (offline hub flags, caches)
PASSED_ENV_PREFIXES = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "OMP_", "MKL_")


@dataclass
class Followed:
    job_id: str
    owner: str
    stop_requested_at: float | None = None

    @property
    def submission_id(self) -> str:
        return submission_id(self.owner)


def submission_id(owner: str) -> str:
    return owner.removeprefix(OWNER_PREFIX)


class RayBackend:
    name = "ray"

    def __init__(self, settings: Settings, db: Database):
        self.settings, self.db = settings, db
        self.jobs: dict[str, Followed] = {}
        self._client = None
        self._unreachable_until = 0.0

    # -- the Jobs API ----------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(self.settings.ray_address)
        return self._client

    def _info(self, sid: str) -> Any | None:
        """The Ray job submitted as ``sid``; None when Ray has none."""
        try:
            return self.client.get_job_info(sid)
        except RuntimeError as exc:
            if "404" in str(exc) or "does not exist" in str(exc):
                return None
            raise

    def _unreachable(self, what: str, exc: Exception) -> None:
        log.warning("Ray cluster at %s unreachable while %s: %s", self.settings.ray_address, what, exc)
        self._client = None
        self._unreachable_until = time.time() + UNREACHABLE_BACKOFF_S

    # -- the backend interface ---------------------------------------------------------------------
    def held(self) -> list[str]:
        return list(self.jobs)

    def owner_id(self, job_id: str) -> str:
        """``ray:<job id>`` for the first run; a fresh submission id when Ray knows that one already."""
        try:
            first = self._info(job_id) is None
        except Exception:
            first = False
        return OWNER_PREFIX + (job_id if first else f"{job_id}-{uuid.uuid4().hex[:6]}")

    def accepting(self) -> bool:
        return time.time() >= self._unreachable_until

    def adopt(self) -> None:
        with self.db.session() as session:
            rows = session.execute(select(FineTuningJobRow.id, FineTuningJobRow.worker_id).where(
                FineTuningJobRow.status.in_(("running", "cancelled")),
                FineTuningJobRow.worker_id.like(OWNER_PREFIX + "%"))).all()
        for job_id, owner in rows:
            if job_id in self.jobs:
                continue
            try:
                info = self._info(submission_id(owner))
            except Exception as exc:  # Ray down: the leases lapse and the jobs are requeued as lost
                self._unreachable("adopting jobs", exc)
                return
            if info is None:
                continue  # not submitted yet (another server is about to) or gone: the lease decides
            self.jobs[job_id] = Followed(job_id, owner)
            status = info.status.value
            if status in ACTIVE:
                with self.db.session() as session:
                    store.renew(session, owner, [job_id], self.settings.worker_lease_s)
                store.record_event(self.db, job_id, f"This server follows the job's Ray run again (Ray job "
                                                    f"{submission_id(owner)} is {status}).")
            log.info("job %s: adopted its Ray run (%s)", job_id, status)

    def start(self, job_id: str, owner: str) -> None:
        cpus = self.settings.ray_num_cpus or float(self.settings.train_threads or 1)
        gpus = self.settings.ray_num_gpus
        sid = submission_id(owner)
        with self.db.session() as session:
            job = session.get(FineTuningJobRow, job_id)
            spec = store.loads(job.distributed if job else None) or {}
        workers = int(spec.get("num_workers") or 1)
        module = "tuneforge.training.runner"
        if workers > 1:  # the driver only coordinates; the Ray Train workers reserve the CPUs
            module, cpus, gpus = "tuneforge.training.ray_train", 0.0, 0.0
        try:
            self.client.submit_job(
                submission_id=sid, entrypoint=self._entrypoint(job_id, owner, module),
                runtime_env=self._runtime_env(), entrypoint_num_cpus=cpus, entrypoint_num_gpus=gpus or None,
                metadata={"tuneforge_job": job_id, "tuneforge_owner": owner})
        except Exception as exc:
            log.exception("job %s: submitting to Ray failed", job_id)
            if isinstance(exc, OSError):  # requests' ConnectionError and the client's own are OSErrors
                self._unreachable("submitting", exc)
            else:  # e.g. the cluster's job agent still starting: retry shortly, not in this tick
                self._unreachable_until = time.time() + 2.0
            with self.db.session() as session:
                if store.release(session, job_id, owner, status="queued"):
                    store.add_event(session, job_id, f"Submitting the job to the Ray cluster failed "
                                                     f"({type(exc).__name__}); it stays queued and is submitted "
                                                     "again shortly.", level="warn", key="ray-submit-failed")
            return
        self.jobs[job_id] = Followed(job_id, owner)
        what = (f"{cpus:g} CPUs, {gpus:g} GPUs" if workers == 1 else
                f"Ray Train, {workers} workers x {float(spec.get('cpus_per_worker') or 1):g} CPUs")
        store.record_event(self.db, job_id, f"Submitted to the Ray cluster as Ray job {sid} ({what}).")
        log.info("job %s: submitted to Ray", job_id)

    def watch(self) -> None:
        for job_id, run in list(self.jobs.items()):
            with self.db.session() as session:
                job = session.get(FineTuningJobRow, job_id)
                status, control, worker = (job.status, job.control, job.worker_id) if job else ("cancelled", None,
                                                                                                None)
            try:
                info = self._info(run.submission_id)
            except Exception as exc:
                self._unreachable("following jobs", exc)
                return
            ray_status = info.status.value if info is not None else None
            active = ray_status in ACTIVE
            if worker != run.owner:  # settled by the runner, or requeued/taken over meanwhile
                if active and status not in ("succeeded", "failed"):
                    self._stop(run)  # a stale run: it must not keep training
                elif not active:
                    self._forget(run)
                continue
            if status == "cancelled" or control == "cancel":
                if active and (run.stop_requested_at is None or time.time() - run.stop_requested_at < STOP_GRACE_S):
                    self._stop(run)
                    continue
                self._finish_cancel(run)
            elif active:
                if control == "pause":
                    self._stop(run)
            else:
                self._reap(run, ray_status, info, control)

    def renew(self, session: Session, lease_s: float) -> None:
        for run in self.jobs.values():
            store.renew(session, run.owner, [run.job_id], lease_s)

    def shutdown(self) -> None:
        """Ray jobs outlive this server on purpose; the next server adopts them (their leases lapse meanwhile)."""
        if self.jobs:
            log.info("leaving %d Ray job(s) running: %s", len(self.jobs), ", ".join(self.jobs))

    # -- settling ------------------------------------------------------------------------------------
    def _stop(self, run: Followed) -> None:
        if run.stop_requested_at is not None:
            return
        run.stop_requested_at = time.time()
        try:
            self.client.stop_job(run.submission_id)
            log.info("job %s: asked Ray to stop its run", run.job_id)
        except Exception as exc:
            run.stop_requested_at = None  # asked again next tick
            self._unreachable("stopping a job", exc)

    def _forget(self, run: Followed) -> None:
        self.jobs.pop(run.job_id, None)
        self._save_logs(run)

    def _finish_cancel(self, run: Followed) -> None:
        self._forget(run)
        with self.db.session() as session:
            job = session.get(FineTuningJobRow, run.job_id)
            if job is not None and store.release(session, run.job_id, run.owner, status_in=("running", "cancelled"),
                                                 status="cancelled", control=None, estimated_finish=None,
                                                 finished_at=job.finished_at or now_s()):
                store.add_event(session, run.job_id, "The job was cancelled; its Ray job was stopped.",
                                key="cancelled-stopped")
        log.info("job %s cancelled", run.job_id)

    def _reap(self, run: Followed, ray_status: str | None, info: Any | None, control: str | None) -> None:
        self._forget(run)
        job_id = run.job_id
        with self.db.session() as session:
            job = session.get(FineTuningJobRow, job_id)
            step = job.step or 0
            if control == "pause":
                if store.release(session, job_id, run.owner, status="paused", control=None, estimated_finish=None):
                    store.add_event(session, job_id, f"The job was paused at step {step}; resume continues "
                                                     "from the saved state.")
                return
            lost = job.attempts + 1
            why = f"Ray reported its run {ray_status}" if ray_status else "its Ray run disappeared"
            if info is not None and info.message:
                why += f": {info.message.strip().splitlines()[0][:300]}"
            if lost > store.MAX_LOST:
                message = f"The job's Ray run ended without finishing it {lost} times ({why}); giving up."
                if store.release(session, job_id, run.owner, status="failed", finished_at=now_s(), attempts=lost,
                                 estimated_finish=None, error=store.dumps({"code": "training_error",
                                                                           "message": message, "param": None})):
                    store.add_event(session, job_id, message, level="error", key="failed")
                return
            last = _last_checkpoint(session, job_id)
            where = f"checkpoint step {last}" if last else "step 0 (no checkpoint yet)"
            if store.release(session, job_id, run.owner, status="queued", attempts=lost, estimated_finish=None):
                store.add_event(session, job_id, f"The job's Ray run ended without finishing it ({why}); the job "
                                                 f"is queued again and resumes from {where} (retry {lost} of "
                                                 f"{store.MAX_LOST}).", level="warn")
        log.warning("job %s: Ray run ended (%s) without finishing it; requeued", job_id, ray_status)

    def _save_logs(self, run: Followed) -> None:
        """The run's output next to the local backend's logs (``<data_dir>/logs/<job id>.log``)."""
        try:
            text = self.client.get_job_logs(run.submission_id)
        except Exception:
            return
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{run.job_id}.log", "a", encoding="utf-8") as fh:
            fh.write(f"--- Ray job {run.submission_id} ---\n{text}")

    # -- what a run gets -------------------------------------------------------------------------------
    def _entrypoint(self, job_id: str, owner: str, module: str = "tuneforge.training.runner") -> str:
        python = self.settings.ray_python or sys.executable
        # exec: Ray runs the entrypoint through a shell, and signals it along with its children; the
        # runner must not see its parent (the shell) die first, its watchdog would exit without saving
        return "exec " + " ".join(shlex.quote(p) for p in (python, "-m", module, job_id, owner))

    def _runtime_env(self) -> dict:
        """Pinned to this tuneforge: its settings (database URL, data folder) and its source on PYTHONPATH."""
        import tuneforge

        source = str(Path(tuneforge.__file__).resolve().parent.parent)
        paths = [source] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV_PREFIXES)}
        env.update({"TUNEFORGE_SETTINGS_JSON": self.settings.model_dump_json(), "PYTHONPATH": os.pathsep.join(paths)})
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env["RAY_JOB_STOP_WAIT_TIME_S"] = str(STOP_WAIT_S)  # read by the run's Ray job supervisor
        return {"env_vars": env}


def _last_checkpoint(session: Session, job_id: str) -> int | None:
    return session.scalar(select(func.max(FineTuningCheckpointRow.step_number))
                          .where(FineTuningCheckpointRow.job_id == job_id))
