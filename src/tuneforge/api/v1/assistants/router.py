"""/v1/assistants: HTTP translation only; the logic is in ``tuneforge.assistants.service``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from tuneforge.api.deps import AppState, get_principal, get_session, get_state
from tuneforge.api.v1.vector_stores.router import json_object
from tuneforge.assistants import service
from tuneforge.assistants.objects import assistant_object
from tuneforge.projects import Principal
from tuneforge.retrieval.ingest import ingestor_for

router = APIRouter(tags=["assistants"])


def page_params(limit: int = Query(20), order: Literal["asc", "desc"] = "desc", after: str | None = None,
                before: str | None = None) -> dict:
    return {"limit": limit, "order": order, "after": after, "before": before}


@router.post("/assistants")
def create_assistant(body: dict = Depends(json_object), state: AppState = Depends(get_state),
                     session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.create_assistant(state, session, ingestor_for(state), principal.project_id, body)


@router.get("/assistants")
def list_assistants(page: dict = Depends(page_params), session: Session = Depends(get_session),
                    principal: Principal = Depends(get_principal)):
    return service.list_assistants(session, principal.project_id, **page)


@router.get("/assistants/{assistant_id}")
def retrieve_assistant(assistant_id: str, session: Session = Depends(get_session),
                       principal: Principal = Depends(get_principal)):
    return assistant_object(service.get_assistant(session, principal.project_id, assistant_id))


@router.post("/assistants/{assistant_id}")
def modify_assistant(assistant_id: str, body: dict = Depends(json_object), state: AppState = Depends(get_state),
                     session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.modify_assistant(state, session, ingestor_for(state), principal.project_id, assistant_id, body)


@router.delete("/assistants/{assistant_id}")
def delete_assistant(assistant_id: str, session: Session = Depends(get_session),
                     principal: Principal = Depends(get_principal)):
    return service.delete_assistant(session, principal.project_id, assistant_id)
