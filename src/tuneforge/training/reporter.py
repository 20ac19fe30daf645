"""What the training process writes to the database as it goes: events, metrics, checkpoints.

Every replayable write has a dedup key (``metrics:<step>``, ``checkpoint:<step>``), so a job that
resumes from an earlier state after a crash re-runs its lost steps without duplicating anything.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import delete, select, update

from tuneforge.db.models import FineTunedModel, FineTuningCheckpointRow, FineTuningJobRow
from tuneforge.db.session import Database
from tuneforge.ids import new_id
from tuneforge.models import catalog
from tuneforge.settings import Settings
from tuneforge.training import checkpoints as ck
from tuneforge.training import store

KEEP_CHECKPOINTS = 3


def model_name(base: str, project: str, suffix: str | None, job_id: str, step: int | None = None) -> str:
    name = f"ft:{base}:{project}:{suffix or ''}:{job_id}"
    return name if step is None else f"{name}:ckpt-step-{step}"


class DbReporter:
    def __init__(self, db: Database, settings: Settings, job: FineTuningJobRow, project_name: str,
                 worker_id: str, out_root: Path):
        self.db, self.settings = db, settings
        self.job_id, self.project_id, self.project_name = job.id, job.project_id, project_name
        self.base_model, self.suffix = job.base_model, job.suffix
        self.worker_id, self.out_root = worker_id, out_root
        self.stop = threading.Event()
        self._t_first: float | None = None
        self._steps_seen = 0

    def event(self, message: str, *, level: str = "info", data: dict | None = None, type: str = "message",
              key: str | None = None) -> None:
        store.record_event(self.db, self.job_id, message, level=level, data=data, type=type, key=key)

    def metrics(self, step: int, total_steps: int, data: dict, message: str) -> None:
        now = time.time()
        if self._t_first is None:
            self._t_first, self._first_step = now, step
        done = step - self._first_step
        eta = None
        if done > 0:
            eta = int(now + (now - self._t_first) / done * (total_steps - step))
        with self.db.session() as session:
            store.add_event(session, self.job_id, message, type="metrics", data=data, key=f"metrics:{step}")
            session.execute(update(FineTuningJobRow).where(FineTuningJobRow.id == self.job_id,
                                                           FineTuningJobRow.worker_id == self.worker_id)
                            .values(step=step, total_steps=total_steps, estimated_finish=eta))

    def checkpoint(self, step: int, epoch: int, folder: Path, metrics: dict) -> None:
        name = model_name(self.base_model, self.project_name, self.suffix, self.job_id, step)
        with self.db.session() as session:
            row = session.scalar(select(FineTuningCheckpointRow).where(
                FineTuningCheckpointRow.job_id == self.job_id, FineTuningCheckpointRow.step_number == step))
            if row is None:
                session.add(FineTuningCheckpointRow(
                    id=new_id("ftckpt_"), job_id=self.job_id, step_number=step, epoch=epoch,
                    metrics=store.dumps(metrics), fine_tuned_model_checkpoint=name, adapter_dir=str(folder)))
            catalog.register_fine_tuned(session, model_id=name, project_id=self.project_id,
                                        base_model=self.base_model, adapter_dir=folder, settings=self.settings,
                                        job_id=self.job_id, step=step)
            store.add_event(session, self.job_id, f"Checkpoint created at step {step}: {name}",
                            key=f"checkpoint:{step}", data={"step": step, "fine_tuned_model_checkpoint": name})
            # Keep the last KEEP_CHECKPOINTS epochs' checkpoints, as OpenAI does.
            rows = session.scalars(select(FineTuningCheckpointRow).where(
                FineTuningCheckpointRow.job_id == self.job_id)
                .order_by(FineTuningCheckpointRow.step_number.desc())).all()
            for old in rows[KEEP_CHECKPOINTS:]:
                session.execute(delete(FineTunedModel).where(FineTunedModel.id == old.fine_tuned_model_checkpoint))
                session.delete(old)
            keep = {r.step_number for r in rows[:KEEP_CHECKPOINTS]}
        ck.prune_checkpoints(self.out_root, keep)

    def stop_requested(self) -> bool:
        return self.stop.is_set()
