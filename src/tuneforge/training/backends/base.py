"""The training-backend interface the worker drives, once per tick, in this order:

``adopt`` (before lost jobs are requeued) → ``watch`` (control requests, finished runs) →
``start`` for each job claimed while ``len(held()) < concurrency`` and ``accepting()`` → ``renew``. ``shutdown`` when
the worker stops.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session


class TrainingBackend(Protocol):
    name: str

    def held(self) -> list[str]:
        """Ids of the jobs this backend is training for this worker."""

    def owner_id(self, job_id: str) -> str:
        """The ``worker_id`` a job is claimed with (and the training process writes under)."""

    def accepting(self) -> bool:
        """False while new jobs cannot be started (the Ray cluster is unreachable): they stay queued."""

    def adopt(self) -> None:
        """Take over running jobs that are still training elsewhere (a restarted server); keep their leases."""

    def start(self, job_id: str, owner: str) -> None:
        """Start training a job just claimed as ``owner``."""

    def watch(self) -> None:
        """Apply cancel/pause requests and settle the jobs whose training ended."""

    def renew(self, session: Session, lease_s: float) -> None:
        """Extend the leases of the held jobs."""

    def shutdown(self) -> None:
        """The worker is stopping."""
