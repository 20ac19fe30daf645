"""Where a claimed fine-tuning job trains: the one interface and its two implementations.

The database queue stays the source of truth whatever the backend: the worker validates, claims
and renews leases; a backend only starts, follows, stops and reaps the training of the jobs it
holds. Either way the training code is the same ``tuneforge.training.runner``, which writes events,
metrics, checkpoints and the final state to the database itself.

- ``local`` (default): a child process of the worker per job (``LocalBackend``).
- ``ray``: a Ray job per fine-tuning job, submitted through the Ray Jobs API (``RayBackend``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneforge.training.backends.base import TrainingBackend

if TYPE_CHECKING:
    from tuneforge.training.worker import Worker

__all__ = ["TrainingBackend", "make_backend"]


def make_backend(worker: Worker) -> TrainingBackend:
    if worker.settings.training_backend == "ray":
        from tuneforge.training.backends.ray_jobs import RayBackend

        return RayBackend(worker.settings, worker.db)
    from tuneforge.training.backends.local import LocalBackend

    return LocalBackend(worker)
