"""``POST /chat`` of the original simple API: ``{"text", "model"?}`` -> ``{"info":"ok","response":{content,id,model}}``.

The model defaults to ``settings.default_model``. It runs through the same chat service (or upstream, via the gateway)
as ``/v1/chat/completions``; errors use OpenAI's envelope like the rest of the server.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tuneforge.api.compat.envelope import ok
from tuneforge.api.deps import PrincipalDep, RuntimeDep
from tuneforge.serving.answer import chat_once
from tuneforge.serving.requests import ChatCompletionRequest

router = APIRouter(tags=["compat"])


class CompatChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the original API took loose bodies

    text: str = Field(min_length=1)
    model: str | None = None


@router.post("/chat")
async def chat(state: RuntimeDep, principal: PrincipalDep, body: CompatChatRequest) -> dict:
    model = body.model or state.settings.default_model
    request = ChatCompletionRequest(model=model, messages=[{"role": "user", "content": body.text}])
    data = await chat_once(state, principal.project_id, request)
    return ok({"content": data["choices"][0]["message"]["content"], "id": data["id"], "model": data["model"]})
