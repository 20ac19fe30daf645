"""/v1/chat/completions: HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from tuneforge.api.deps import AppState, get_principal, get_state
from tuneforge.api.v1.chat.http import generation_endpoint, schema
from tuneforge.api.v1.chat.protocol import ChatCompletionRequest
from tuneforge.projects import Principal

router = APIRouter(tags=["chat"])


@router.post("/chat/completions", openapi_extra=schema(ChatCompletionRequest))
async def create_chat_completion(request: Request, state: AppState = Depends(get_state),
                                 principal: Principal = Depends(get_principal)):
    from tuneforge.api.v1.chat import service  # pulls in torch: loaded on first use, not at start-up

    return await generation_endpoint(request, state, principal, path="chat/completions", request_model=ChatCompletionRequest,
                                     service=service)
