"""/v1/responses: HTTP translation only (the logic is in tuneforge.responses). Upstream models are
forwarded through the gateway; the ids they create stay owned by the calling project."""

from __future__ import annotations

import json
from contextlib import aclosing

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneforge.api import sse
from tuneforge.api.deps import PageDep, PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.http import read_json, schema, unless_disconnected, validate
from tuneforge.api.v1.responses.protocol import InputTokensRequest, ResponseCreateRequest
from tuneforge.errors import InvalidRequest
from tuneforge.gateway import Upstream, UpstreamError
from tuneforge.responses import store
from tuneforge.responses import upstream as upstream_mod
from tuneforge.runtime import Runtime

router = APIRouter(tags=["responses"])
Include = Query(None, alias="include[]")


async def _forward_create(rt: Runtime, project_id: str, upstream: Upstream, payload: dict, raw: bytes,
                          request: Request) -> Response:
    def _prepare():
        with rt.db.session() as session:
            return upstream_mod.prepare(session, project_id, upstream, payload, raw)

    forward = await run_in_threadpool(_prepare)
    try:
        response = await rt.gateway.open(upstream, "responses", forward.body, dict(request.headers))
    except UpstreamError as exc:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status_code)
    content_type = response.headers.get("content-type", "application/json")
    if "text/event-stream" in content_type:
        return StreamingResponse(upstream_mod.relay(rt.db, project_id, upstream, forward, response),
                                 status_code=response.status_code, media_type=content_type, headers=sse.HEADERS)
    try:
        body = json.loads(await response.aread())
    except ValueError:
        return JSONResponse({"error": UpstreamError(f"The upstream '{upstream.name}' sent a body that is not "
                                                    "JSON.").to_dict()}, status_code=502)
    finally:
        await response.aclose()
    return await run_in_threadpool(upstream_mod.adopt, rt.db, project_id, upstream, forward, body)


@router.post("/responses", openapi_extra=schema(ResponseCreateRequest))
async def create_response(rt: RuntimeDep, principal: PrincipalDep, request: Request):
    raw, payload = await read_json(request)
    upstream = rt.gateway.resolve(payload.get("model"))
    if upstream is not None:
        return await _forward_create(rt, principal.project_id, upstream, payload, raw, request)
    body = validate(ResponseCreateRequest, payload)
    from tuneforge.responses import service  # pulls in torch: loaded on first use, not at start-up

    def _plan():
        with rt.db.session() as session:
            return service.plan(rt, session, principal.project_id, body)

    plan = await run_in_threadpool(_plan)
    if plan.background:
        rt.background_responses.submit(plan)
        return plan.response("queued")
    generation = await service.Generation(rt, plan).start()
    if body.stream:
        async def events():
            async with aclosing(generation.events()) as source:  # a client that hangs up stops the engine
                async for event in source:
                    yield sse.ServerEvent(event, name=event["type"])

        return sse.sse_response(events(), done=None)
    return await unless_disconnected(request, generation.result())


@router.post("/responses/input_tokens", openapi_extra=schema(InputTokensRequest))
async def count_input_tokens(rt: RuntimeDep, principal: PrincipalDep, request: Request):
    raw, payload = await read_json(request)
    upstream = rt.gateway.resolve(payload.get("model"))
    if upstream is not None:
        return await run_in_threadpool(rt.gateway.call, upstream, "POST", "responses/input_tokens", json=payload)
    validate(InputTokensRequest, payload)
    from tuneforge.responses import service

    def _count():
        with rt.db.session() as session:
            return service.input_tokens(rt, session, principal.project_id, payload)

    return await run_in_threadpool(_count)


def _owner(rt: Runtime, session, project_id: str, response_id: str) -> Upstream | None:
    return upstream_mod.owner(rt.gateway, session, project_id, response_id)


@router.get("/responses/{response_id}")
def retrieve_response(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, response_id: str,
                      include: list[str] | None = Include, stream: bool | None = None):
    if stream:
        raise InvalidRequest("Streaming a stored response again is not supported by this server.", param="stream",
                             code="unsupported_parameter")
    upstream = _owner(rt, session, principal.project_id, response_id)
    if upstream is not None:
        return upstream_mod.call(rt.gateway, upstream, "GET", f"responses/{response_id}")
    return store.row_object(store.get(session, principal.project_id, response_id))


@router.delete("/responses/{response_id}")
def delete_response(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, response_id: str):
    upstream = _owner(rt, session, principal.project_id, response_id)
    if upstream is not None:
        out = upstream_mod.call(rt.gateway, upstream, "DELETE", f"responses/{response_id}")
        store.forget_upstream(session, response_id)
        return out
    from tuneforge.responses import service

    return service.delete(rt, session, principal.project_id, response_id)


@router.post("/responses/{response_id}/cancel")
def cancel_response(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, response_id: str):
    upstream = _owner(rt, session, principal.project_id, response_id)
    if upstream is not None:
        return upstream_mod.call(rt.gateway, upstream, "POST", f"responses/{response_id}/cancel")
    from tuneforge.responses import service

    return service.cancel(rt, session, principal.project_id, response_id)


@router.get("/responses/{response_id}/input_items")
def list_input_items(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, page: PageDep, response_id: str,
                     include: list[str] | None = Include):
    upstream = _owner(rt, session, principal.project_id, response_id)
    if upstream is not None:
        return upstream_mod.call(rt.gateway, upstream, "GET", f"responses/{response_id}/input_items", params=page)
    return store.input_items_page(store.get(session, principal.project_id, response_id), **page)
