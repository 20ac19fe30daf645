"""The three generation endpoints, called from the offline runner (eval runs, batches) instead of HTTP.

Same services as the HTTP routes — a local model goes through ``serving`` and the engine, an upstream one
through ``rt.gateway`` — with one difference: local generation requests are marked background priority,
so the engine admits every waiting interactive request first. Each call returns OpenAI's response object
or raises a ``TuneforgeError`` (bad request, unknown model, upstream failure) for that one request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import ValidationError

from tuneforge.errors import InvalidRequest
from tuneforge.serving.requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

BACKGROUND = 1
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


def _parse(model, body: dict):
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first.get("loc", ())) or None
        raise InvalidRequest(f"Invalid body: {param}: {first.get('msg')}", param=param) from None


def check_body(endpoint: str, body: dict) -> None:
    """The checks that need no model (shape, streaming): a line failing them never reaches the runner."""
    model = {"/v1/chat/completions": ChatCompletionRequest, "/v1/completions": CompletionRequest,
             "/v1/embeddings": EmbeddingRequest}[endpoint]
    _parse(model, body)
    if body.get("stream"):
        raise InvalidRequest("'stream' is not supported in a batch.", param="stream")


async def chat(rt: Runtime, project_id: str, body: dict) -> dict:
    request = _parse(ChatCompletionRequest, body)
    if request.stream:
        raise InvalidRequest("'stream' is not supported here.", param="stream")
    upstream = rt.gateway.resolve(request.model)
    if upstream is not None:
        return await rt.gateway.post_json(upstream, "chat/completions", request.model_dump(exclude_none=True))
    from tuneforge.serving import chat as service  # pulls in torch: loaded on first use

    def _prepare():
        with rt.db.session() as session:
            return service.prepare(rt, session, request, project_id)

    prepared = await asyncio.to_thread(_prepare)
    prepared.request.priority = BACKGROUND
    return await service.complete(rt, prepared)


async def completion(rt: Runtime, project_id: str, body: dict) -> dict:
    request = _parse(CompletionRequest, body)
    if request.stream:
        raise InvalidRequest("'stream' is not supported here.", param="stream")
    upstream = rt.gateway.resolve(request.model)
    if upstream is not None:
        return await rt.gateway.post_json(upstream, "completions", request.model_dump(exclude_none=True))
    from tuneforge.serving import completions as service

    def _prepare():
        with rt.db.session() as session:
            return service.prepare(rt, session, request, project_id)

    prepared = await asyncio.to_thread(_prepare)
    for generation in prepared.requests:
        generation.priority = BACKGROUND
    return await service.complete(rt, prepared)


async def embedding(rt: Runtime, project_id: str, body: dict) -> dict:
    request = _parse(EmbeddingRequest, body)
    upstream = rt.gateway.resolve(request.model)
    if upstream is not None:
        return await rt.gateway.post_json(upstream, "embeddings", request.model_dump(exclude_none=True))
    from tuneforge.serving import embeddings as service

    return await asyncio.to_thread(service.create, rt.embedder, rt.settings.embedding_model, request)


async def call(rt: Runtime, project_id: str, endpoint: str, body: dict) -> dict:
    handler = {"/v1/chat/completions": chat, "/v1/completions": completion, "/v1/embeddings": embedding}[endpoint]
    return await handler(rt, project_id, body)
