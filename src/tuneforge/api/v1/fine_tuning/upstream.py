"""Fine-tuning jobs for upstream models (``TUNEFORGE_UPSTREAMS``), e.g. ``gpt-4o-mini`` through OpenAI.

Creating one uploads the job's local files to the upstream, creates the job there with the same
parameters, and remembers which project and upstream own the job id; every later call about that id
(retrieve, cancel, pause, resume, events, checkpoints) is forwarded there. The upstream's answers and
errors come back as it sent them; its key never leaves the server.
"""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session

from tuneforge.api.v1.files import service as files_service
from tuneforge.db.models import UpstreamFineTuningJob
from tuneforge.errors import InvalidRequest, TuneforgeError
from tuneforge.inference.upstream import Upstream, UpstreamRouter


class UpstreamAnswered(TuneforgeError):
    """An upstream's error, passed on with its own status, type, code and message."""

    def __init__(self, status: int, response: httpx.Response, upstream: Upstream):
        try:
            error = (response.json() or {}).get("error") or {}
        except ValueError:
            error = {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        super().__init__(error.get("message") or f"The upstream '{upstream.name}' answered HTTP {status}.",
                         param=error.get("param"), code=error.get("code"))
        self.status_code = status
        self.type = error.get("type") or "upstream_error"


def _call(upstream: Upstream, method: str, path: str, **kwargs) -> dict:
    try:
        response = httpx.request(method, upstream.url(path), headers=upstream.headers(), timeout=upstream.timeout,
                                 **kwargs)
    except httpx.HTTPError as exc:
        raise TuneforgeError(f"The upstream '{upstream.name}' could not be reached: {type(exc).__name__}.",
                             code="upstream_unavailable") from None
    if response.status_code >= 400:
        raise UpstreamAnswered(response.status_code, response, upstream)
    return response.json()


def _upload(state, session: Session, project_id: str, upstream: Upstream, file_id: str, param: str) -> str:
    try:
        row = files_service.get_file(session, project_id, file_id)
    except TuneforgeError as exc:
        exc.param = param
        raise
    with open(files_service.file_path(state.store, row), "rb") as fh:
        uploaded = _call(upstream, "POST", "files", files={"file": (row.filename, fh)}, data={"purpose": "fine-tune"})
    return uploaded["id"]


def create_job(state, session: Session, project_id: str, upstream: Upstream, body: dict) -> dict:
    """``body`` is the client's create request; local file ids are replaced by uploaded copies."""
    payload = dict(body)
    for param in ("training_file", "validation_file"):
        if payload.get(param):
            payload[param] = _upload(state, session, project_id, upstream, payload[param], param)
    job = _call(upstream, "POST", "fine_tuning/jobs", json=payload)
    session.add(UpstreamFineTuningJob(id=job["id"], project_id=project_id, upstream=upstream.name,
                                      model=str(body.get("model"))))
    session.commit()
    return job


def owner(router: UpstreamRouter, session: Session, project_id: str, job_id: str) -> Upstream | None:
    """The upstream holding this project's job ``job_id``, or None for a local (or unknown) id."""
    row = session.get(UpstreamFineTuningJob, job_id)
    if row is None or row.project_id != project_id:
        return None
    for upstream in router.upstreams:
        if upstream.name == row.upstream:
            return upstream
    raise InvalidRequest(f"Job {job_id} lives on the upstream '{row.upstream}', which is no longer configured.")


def forward(upstream: Upstream, method: str, path: str, params: dict | None = None) -> dict:
    return _call(upstream, method, path, params={k: v for k, v in (params or {}).items() if v is not None})
