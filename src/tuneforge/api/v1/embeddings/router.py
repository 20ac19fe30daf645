"""/v1/embeddings: HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import PrincipalDep, RuntimeDep
from tuneforge.api.http import passthrough, read_json, schema, validate
from tuneforge.api.v1.embeddings.protocol import EmbeddingRequest
from tuneforge.serving import embeddings as service

router = APIRouter(tags=["embeddings"])


@router.post("/embeddings", openapi_extra=schema(EmbeddingRequest))
async def create_embeddings(state: RuntimeDep, principal: PrincipalDep, request: Request):
    raw, payload = await read_json(request)
    upstream = state.gateway.resolve(payload.get("model"))
    if upstream is not None:
        return await passthrough(state, upstream, "embeddings", raw, request)
    body = validate(EmbeddingRequest, payload)
    return await run_in_threadpool(service.create, state.embedder, state.settings.embedding_model, body)
