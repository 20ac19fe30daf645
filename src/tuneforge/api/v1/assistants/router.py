"""/v1/assistants: HTTP translation only; the logic is in ``tuneforge.assistants.service``."""

from __future__ import annotations

from fastapi import APIRouter

from tuneforge.api.deps import PageDep, PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.schemas import sent
from tuneforge.api.v1.assistants.protocol import CreateAssistantRequest, ModifyAssistantRequest
from tuneforge.assistants import service
from tuneforge.assistants.objects import assistant_object

router = APIRouter(tags=["assistants"])


@router.post("/assistants")
def create_assistant(
    state: RuntimeDep, session: SessionDep, principal: PrincipalDep, body: CreateAssistantRequest
):
    return service.create_assistant(state, session, state.ingestor, principal.project_id, sent(body))


@router.get("/assistants")
def list_assistants(session: SessionDep, principal: PrincipalDep, page: PageDep):
    return service.list_assistants(session, principal.project_id, **page)


@router.get("/assistants/{assistant_id}")
def retrieve_assistant(session: SessionDep, principal: PrincipalDep, assistant_id: str):
    return assistant_object(service.get_assistant(session, principal.project_id, assistant_id))


@router.post("/assistants/{assistant_id}")
def modify_assistant(
    state: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    assistant_id: str,
    body: ModifyAssistantRequest | None = None,
):
    return service.modify_assistant(
        state, session, state.ingestor, principal.project_id, assistant_id, sent(body)
    )


@router.delete("/assistants/{assistant_id}")
def delete_assistant(session: SessionDep, principal: PrincipalDep, assistant_id: str):
    return service.delete_assistant(session, principal.project_id, assistant_id)
