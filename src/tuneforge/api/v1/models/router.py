"""/v1/models."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.v1.models.protocol import ModelDeleted, ModelList, ModelObject, RegisterModelRequest
from tuneforge.serving import models as service

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelList)
def list_models(state: RuntimeDep, session: SessionDep, principal: PrincipalDep) -> dict:
    return service.list_models(session, state.registry, state.settings, state.gateway, principal.project_id)


@router.get("/models/{model_id:path}", response_model=ModelObject)
def retrieve_model(state: RuntimeDep, session: SessionDep, principal: PrincipalDep, model_id: str) -> dict:
    return service.retrieve_model(
        session, state.registry, state.settings, state.gateway, model_id, principal.project_id
    )


@router.delete("/models/{model_id:path}", response_model=ModelDeleted)
def delete_model(state: RuntimeDep, session: SessionDep, principal: PrincipalDep, model_id: str) -> dict:
    return service.delete_model(session, state.registry, state.settings, model_id, principal.project_id,
                                state.gateway)


@router.post(
    "/models", response_model=ModelObject, summary="Register a local base model (tuneforge extension)"
)
async def register_model(state: RuntimeDep, principal: PrincipalDep, body: RegisterModelRequest) -> dict:
    info = await run_in_threadpool(state.registry.register, body.id, body.path, principal.project_id)
    return service.model_object(info)
