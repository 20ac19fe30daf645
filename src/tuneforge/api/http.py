"""HTTP helpers shared by routers: the one JSON-body reader (raw bytes kept, so upstream requests are
forwarded untouched), validation errors in OpenAI's shape, the upstream pass-through, and cancelling
non-streaming work when the client hangs up."""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
from collections.abc import Awaitable
from urllib.parse import quote

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from tuneforge.api import sse
from tuneforge.errors import InvalidRequest
from tuneforge.gateway import Route, Upstream, UpstreamError
from tuneforge.models import catalog
from tuneforge.runtime import Runtime

log = logging.getLogger("tuneforge.api")

def attachment(filename: str) -> str:
    """A Content-Disposition value for any display name (RFC 6266): an ASCII ``filename`` fallback
    without quotes, backslashes or control characters, and the exact name as UTF-8 in ``filename*``.
    A raw control character in a header makes the server drop the response, so nothing raw goes in."""
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in
                       unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload.)"
)


async def read_json(request: Request) -> tuple[bytes, dict]:
    raw = await request.body()
    try:
        payload = json.loads(raw)
    except ValueError:
        raise InvalidRequest(_JSON_HINT) from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return raw, payload


def validate(model: type[BaseModel], payload: dict):
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None  # -> 400 in OpenAI's envelope


def schema(model: type[BaseModel]) -> dict:
    """OpenAPI request body for routes that read the raw body themselves."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def passthrough(rt: Runtime, upstream: Upstream | Route, path: str, raw: bytes, request: Request) -> Response:
    """Forward the request byte for byte; stream the answer back as it arrives (SSE included). The
    upstream's errors come back in OpenAI's envelope with its status, keys redacted."""
    try:
        if isinstance(upstream, Route):
            response = await rt.gateway.open_route(upstream, path, raw, dict(request.headers))
        else:
            response = await rt.gateway.open(upstream, path, raw, dict(request.headers))
    except UpstreamError as exc:
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status_code)
    content_type = response.headers.get("content-type", "application/json")
    route = upstream if isinstance(upstream, Route) else Route(upstream)
    if "text/event-stream" not in content_type:
        try:
            body = b"".join([part async for part in rt.gateway.relay(route, response)])
        finally:
            await response.aclose()
        return Response(body, status_code=response.status_code, media_type=content_type)

    async def relay():
        try:
            async for part in rt.gateway.relay(route, response):
                yield part
        finally:  # also when the client hangs up: the upstream stops generating too
            await response.aclose()

    return StreamingResponse(
        relay(), status_code=response.status_code, media_type=content_type, headers=sse.HEADERS
    )


async def unless_disconnected(request: Request, work: Awaitable, poll: float = 0.25):
    """Run ``work``; if the client disconnects first, cancel it (which cancels the generation)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                log.info("client disconnected; generation cancelled")
                return JSONResponse(
                    {
                        "error": {
                            "message": "Client disconnected.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": "client_disconnected",
                        }
                    },
                    status_code=499,
                )
    finally:
        if not task.done():
            task.cancel()


async def generation_endpoint(
    request: Request, state: Runtime, principal, *, path: str, request_model: type[BaseModel], service
) -> Response:
    """The shared body of /chat/completions and /completions: forward to an upstream when one claims
    the model; validate, then forward to the vLLM or llama.cpp server of the model's base when one is configured;
    else prepare in a worker thread, then stream or answer once."""
    raw, payload = await read_json(request)
    upstream = state.gateway.resolve(payload.get("model"))
    if upstream is not None:
        return await passthrough(state, upstream, path, raw, request)
    body = validate(request_model, payload)
    if state.gateway.serves_bases:
        def _route():
            with state.db.session() as session:
                lookup = catalog.lookup(session, state.registry, state.settings, principal.project_id)
                return state.gateway.route(body.model, lookup)

        route = await run_in_threadpool(_route)
        if route.upstream is not None:
            return await passthrough(state, route, path, raw, request)

    def _prepare():
        with state.db.session() as session:
            return service.prepare(state, session, body, principal.project_id)

    prepared = await run_in_threadpool(_prepare)
    if body.stream:
        return sse.sse_response(await service.open_stream(state, prepared))
    return await unless_disconnected(request, service.complete(state, prepared))
