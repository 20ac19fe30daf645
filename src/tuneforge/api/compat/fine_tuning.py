"""The original simple API's fine-tuning routes: ``POST /fine_tuning`` and ``POST /retrieve``.

Answers use the old envelope ``{"info": "ok", "response": <job>}``; the job carries every
OpenAI field. Errors use OpenAI's envelope, like the rest of the server.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from tuneforge.api.compat.envelope import ok
from tuneforge.api.deps import AppState, get_principal, get_session, get_state
from tuneforge.api.v1.fine_tuning import service
from tuneforge.api.v1.fine_tuning.protocol import CompatCreateRequest, CompatRetrieveRequest
from tuneforge.api.v1.fine_tuning.router import wake_worker
from tuneforge.projects import Principal

router = APIRouter(tags=["compat"])


@router.post("/fine_tuning")
def create_fine_tuning(body: CompatCreateRequest, state: AppState = Depends(get_state),
                       session: Session = Depends(get_session), principal: Principal = Depends(get_principal)) -> dict:
    """Start a supervised LoRA job on ``training_file`` (model defaults to the server's default model)."""
    request = body.model_dump(exclude_none=True)
    request.setdefault("model", state.settings.default_model)
    job = service.create_job(session, state.registry, state.settings, principal.project_id, request)
    session.commit()
    wake_worker(state)
    return ok(job)


@router.post("/retrieve")
def retrieve_fine_tuning(body: CompatRetrieveRequest, session: Session = Depends(get_session),
                         principal: Principal = Depends(get_principal)) -> dict:
    return ok(service.get_job(session, principal.project_id, body.fine_tuning_job_id))
