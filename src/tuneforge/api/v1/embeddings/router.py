"""/v1/embeddings: HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import AppState, get_principal, get_state
from tuneforge.api.v1.chat.http import passthrough, read_json, schema, validate
from tuneforge.api.v1.embeddings import service
from tuneforge.api.v1.embeddings.protocol import EmbeddingRequest
from tuneforge.inference.runtime import get_embeddings, get_upstreams
from tuneforge.projects import Principal

router = APIRouter(tags=["embeddings"])


@router.post("/embeddings", openapi_extra=schema(EmbeddingRequest))
async def create_embeddings(request: Request, state: AppState = Depends(get_state),
                            principal: Principal = Depends(get_principal)):
    raw, payload = await read_json(request)
    upstream = get_upstreams(state).match(payload.get("model"))
    if upstream is not None:
        return await passthrough(state, upstream, "embeddings", raw, request)
    body = validate(EmbeddingRequest, payload)
    return await run_in_threadpool(service.create, get_embeddings(state), state.settings.embedding_model, body)
