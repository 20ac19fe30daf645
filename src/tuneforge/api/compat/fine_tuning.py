"""The original simple API's fine-tuning routes: ``POST /fine_tuning`` and ``POST /retrieve``.

Answers use the old envelope ``{"info": "ok", "response": <job>}``; the job carries every
OpenAI field. Errors use OpenAI's envelope, like the rest of the server.
"""

from __future__ import annotations

from fastapi import APIRouter

from tuneforge.api.compat.envelope import ok
from tuneforge.api.deps import PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.v1.fine_tuning.protocol import CompatCreateRequest, CompatRetrieveRequest
from tuneforge.training import service

router = APIRouter(tags=["compat"])


@router.post("/fine_tuning")
def create_fine_tuning(
    state: RuntimeDep, session: SessionDep, principal: PrincipalDep, body: CompatCreateRequest
) -> dict:
    """Start a supervised LoRA job on ``training_file`` (model defaults to the server's default model)."""
    request = body.model_dump(exclude_none=True)
    request.setdefault("model", state.settings.default_model)
    return ok(service.create(state, session, principal.project_id, request))


@router.post("/retrieve")
def retrieve_fine_tuning(
    state: RuntimeDep, session: SessionDep, principal: PrincipalDep, body: CompatRetrieveRequest
) -> dict:
    return ok(service.retrieve(state, session, principal.project_id, body.fine_tuning_job_id))
