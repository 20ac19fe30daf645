"""/v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import AppState, get_principal, get_session, get_state
from tuneforge.api.v1.models import service
from tuneforge.api.v1.models.protocol import ModelDeleted, ModelList, ModelObject, RegisterModelRequest
from tuneforge.projects import Principal

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelList)
def list_models(state: AppState = Depends(get_state), session: Session = Depends(get_session),
                principal: Principal = Depends(get_principal)) -> dict:
    return service.list_models(session, state.registry, state.settings, principal.project_id)


@router.get("/models/{model_id:path}", response_model=ModelObject)
def retrieve_model(model_id: str, state: AppState = Depends(get_state), session: Session = Depends(get_session),
                   principal: Principal = Depends(get_principal)) -> dict:
    return service.retrieve_model(session, state.registry, state.settings, model_id, principal.project_id)


@router.delete("/models/{model_id:path}", response_model=ModelDeleted)
def delete_model(model_id: str, state: AppState = Depends(get_state), session: Session = Depends(get_session),
                 principal: Principal = Depends(get_principal)) -> dict:
    return service.delete_model(session, state.registry, state.settings, model_id, principal.project_id)


@router.post("/models", response_model=ModelObject, summary="Register a local base model (tuneforge extension)")
async def register_model(body: RegisterModelRequest, state: AppState = Depends(get_state),
                         principal: Principal = Depends(get_principal)) -> dict:
    info = await run_in_threadpool(state.registry.register, body.id, body.path, principal.project_id)
    return service.model_object(info)
