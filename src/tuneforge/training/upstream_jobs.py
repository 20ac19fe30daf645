"""Fine-tuning jobs for upstream models (``TUNEFORGE_UPSTREAMS``), e.g. ``gpt-4o-mini`` through OpenAI.

Creating one uploads the job's local files to the upstream, creates the job there with the same
parameters, and remembers which project and upstream own the job id; every later call about that id
(retrieve, cancel, pause, resume, events, checkpoints) is forwarded there through the gateway. The
upstream's answers come back as it sent them, its errors as ``UpstreamError``; its key never leaves
the server.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tuneforge.db.models import UpstreamFineTuningJob
from tuneforge.errors import InvalidRequest, TuneforgeError
from tuneforge.files import service as files_service
from tuneforge.gateway import Gateway, Upstream
from tuneforge.storage import BlobStore


def _upload(gateway: Gateway, store: BlobStore, session: Session, project_id: str, upstream: Upstream,
            file_id: str, param: str) -> str:
    try:
        row = files_service.get_file(session, project_id, file_id)
    except TuneforgeError as exc:
        exc.param = param
        raise
    with open(files_service.file_path(store, row), "rb") as fh:
        uploaded = gateway.call(upstream, "POST", "files", files={"file": (row.filename, fh)},
                                data={"purpose": "fine-tune"})
    return uploaded["id"]


def create_job(gateway: Gateway, store: BlobStore, session: Session, project_id: str, upstream: Upstream,
               body: dict) -> dict:
    """``body`` is the client's create request; local file ids are replaced by uploaded copies."""
    payload = dict(body)
    for param in ("training_file", "validation_file"):
        if payload.get(param):
            payload[param] = _upload(gateway, store, session, project_id, upstream, payload[param], param)
    job = gateway.call(upstream, "POST", "fine_tuning/jobs", json=payload)
    session.add(UpstreamFineTuningJob(id=job["id"], project_id=project_id, upstream=upstream.name,
                                      model=str(body.get("model"))))
    session.commit()
    return job


def owner(gateway: Gateway, session: Session, project_id: str, job_id: str) -> Upstream | None:
    """The upstream holding this project's job ``job_id``, or None for a local (or unknown) id."""
    row = session.get(UpstreamFineTuningJob, job_id)
    if row is None or row.project_id != project_id:
        return None
    upstream = gateway.by_name(row.upstream)
    if upstream is None:
        raise InvalidRequest(f"Job {job_id} lives on the upstream '{row.upstream}', which is no longer configured.")
    return upstream
