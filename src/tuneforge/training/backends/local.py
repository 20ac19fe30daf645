"""The default backend: one child process of the worker per job (``python -m tuneforge.training.runner``).

The child-process code itself lives in ``worker.py`` (unchanged); this adapter presents it through
the backend interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from tuneforge.training import store

if TYPE_CHECKING:
    from tuneforge.training.worker import Worker


class LocalBackend:
    name = "local"

    def __init__(self, worker: Worker):
        self.worker = worker

    def held(self) -> list[str]:
        return list(self.worker.children)

    def owner_id(self, job_id: str) -> str:
        return self.worker.id

    def accepting(self) -> bool:
        return True

    def adopt(self) -> None:
        """Nothing to adopt: a child process never outlives its worker (the runner's watchdog)."""

    def start(self, job_id: str, owner: str) -> None:
        self.worker._spawn(job_id)

    def watch(self) -> None:
        self.worker._watch_children()

    def renew(self, session: Session, lease_s: float) -> None:
        store.renew(session, self.worker.id, self.held(), lease_s)

    def shutdown(self) -> None:
        self.worker._shutdown_children()
