"""/v1/completions (legacy): HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import AppState, get_principal, get_state
from tuneforge.api.sse import sse_response
from tuneforge.api.v1.chat.http import passthrough, read_json, schema, unless_disconnected, validate
from tuneforge.api.v1.completions import service
from tuneforge.api.v1.completions.protocol import CompletionRequest
from tuneforge.inference.runtime import get_upstreams
from tuneforge.projects import Principal

router = APIRouter(tags=["completions"])


@router.post("/completions", openapi_extra=schema(CompletionRequest))
async def create_completion(request: Request, state: AppState = Depends(get_state),
                            principal: Principal = Depends(get_principal)):
    raw, payload = await read_json(request)
    upstream = get_upstreams(state).match(payload.get("model"))
    if upstream is not None:
        return await passthrough(state, upstream, "completions", raw, request)
    body = validate(CompletionRequest, payload)

    def _prepare() -> service.Prepared:
        with state.db.session() as session:
            return service.prepare(state, session, body, principal.project_id)

    prepared = await run_in_threadpool(_prepare)
    if body.stream:
        return sse_response(await service.open_stream(state, prepared))
    return await unless_disconnected(request, service.complete(state, prepared))
