"""/v1/chat/completions: HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge.api.deps import PrincipalDep, RuntimeDep
from tuneforge.api.http import generation_endpoint, schema
from tuneforge.serving.requests import ChatCompletionRequest

router = APIRouter(tags=["chat"])


@router.post("/chat/completions", openapi_extra=schema(ChatCompletionRequest))
async def create_chat_completion(state: RuntimeDep, principal: PrincipalDep, request: Request):
    from tuneforge.serving import chat as service  # pulls in torch: loaded on first use, not at start-up

    return await generation_endpoint(
        request,
        state,
        principal,
        path="chat/completions",
        request_model=ChatCompletionRequest,
        service=service,
    )
