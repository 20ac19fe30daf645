"""The catalog of servable models: base models (registry) plus each project's fine-tuned adapters.

Serving and training both ask it one question: "what is model X for project P?" The answer is a
base model name plus, for fine-tuned models and checkpoints, the adapter folder to put on top.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tuneforge.db.models import FineTunedModel, FineTuningCheckpointRow, Project
from tuneforge.errors import NotFound
from tuneforge.models.registry import ModelRegistry
from tuneforge.settings import Settings


@dataclass(frozen=True)
class ServedModel:
    id: str
    base_model: str
    adapter_dir: Path | None  # None for a base model
    owned_by: str
    created: int
    context_length: int | None = None
    job_id: str | None = None
    step: int | None = None

    @property
    def is_fine_tuned(self) -> bool:
        return self.adapter_dir is not None

    def to_model_object(self) -> dict:
        obj = {"id": self.id, "object": "model", "created": self.created, "owned_by": self.owned_by}
        obj["tuneforge"] = {"source": "fine-tuned" if self.adapter_dir else "base", "base_model": self.base_model,
                            "context_length": self.context_length, "job_id": self.job_id, "step": self.step}
        return obj


def model_not_found(model_id: str) -> NotFound:
    return NotFound(f"The model '{model_id}' does not exist or you do not have access to it.",
                    param="model", code="model_not_found")


def adapter_path(settings: Settings, row: FineTunedModel) -> Path:
    path = Path(row.adapter_dir)
    return path if path.is_absolute() else settings.data_dir / path


def _from_row(settings: Settings, registry: ModelRegistry, row: FineTunedModel, owner: str) -> ServedModel:
    base = registry.find(row.base_model)
    return ServedModel(row.id, row.base_model, adapter_path(settings, row), owner, row.created_at,
                       base.context_length if base else None, row.job_id, row.step)


def resolve(session: Session, registry: ModelRegistry, settings: Settings, model_id: str,
            project_id: str) -> ServedModel:
    """Resolve a model id for a project; another project's fine-tuned model is 'not found'."""
    if model_id.startswith("ft:"):
        row = session.get(FineTunedModel, model_id)
        if row is None or row.project_id != project_id:
            raise model_not_found(model_id)
        project = session.get(Project, row.project_id)
        return _from_row(settings, registry, row, project.name if project else row.project_id)
    info = registry.find(model_id, project_id)  # another project's registered model: not found
    if info is None:
        raise model_not_found(model_id)
    return ServedModel(info.id, info.id, None, info.owned_by, info.created, info.context_length)


def lookup(session: Session, registry: ModelRegistry, settings: Settings,
           project_id: str) -> Callable[[str], ServedModel | None]:
    """``resolve`` for one project, as ``Gateway.route`` takes it: None for the embeddings model (the
    generation routes answer for that one themselves)."""
    def find(model_id: str) -> ServedModel | None:
        if model_id == settings.embedding_model:
            return None
        return resolve(session, registry, settings, model_id, project_id)
    return find


def list_fine_tuned(session: Session, registry: ModelRegistry, settings: Settings,
                    project_id: str) -> list[ServedModel]:
    project = session.get(Project, project_id)
    owner = project.name if project else project_id
    rows = session.scalars(select(FineTunedModel).where(FineTunedModel.project_id == project_id)
                           .order_by(FineTunedModel.created_at, FineTunedModel.id)).all()
    return [_from_row(settings, registry, r, owner) for r in rows]


def register_fine_tuned(session: Session, *, model_id: str, project_id: str, base_model: str,
                        adapter_dir: Path, settings: Settings, job_id: str | None = None,
                        step: int | None = None) -> FineTunedModel:
    """Record an adapter folder as a servable model (the training worker calls this)."""
    try:
        stored = str(adapter_dir.resolve().relative_to(settings.data_dir))
    except ValueError:
        stored = str(adapter_dir.resolve())
    row = session.get(FineTunedModel, model_id)
    if row is None:
        row = FineTunedModel(id=model_id, project_id=project_id, base_model=base_model, adapter_dir=stored,
                             job_id=job_id, step=step)
        session.add(row)
    else:  # a resumed job re-registering the same checkpoint: keep one row
        row.adapter_dir, row.base_model, row.step = stored, base_model, step
    session.flush()
    return row


def delete_fine_tuned(session: Session, settings: Settings, model_id: str, project_id: str) -> None:
    row = session.get(FineTunedModel, model_id)
    if row is None or row.project_id != project_id:
        raise model_not_found(model_id)
    path = adapter_path(settings, row)
    # A deleted checkpoint model leaves its job's checkpoint list: listed checkpoints must be servable.
    session.execute(delete(FineTuningCheckpointRow).where(
        FineTuningCheckpointRow.fine_tuned_model_checkpoint == model_id))
    session.delete(row)
    session.commit()
    if path.is_dir() and settings.data_dir in path.resolve().parents:
        shutil.rmtree(path, ignore_errors=True)
