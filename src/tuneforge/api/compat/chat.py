"""``POST /chat`` of the original simple API: ``{"text", "model"?}`` -> ``{"info":"ok","response":{content,id,model}}``.

The model defaults to ``settings.default_model``. It runs through the same chat service (or upstream)
as ``/v1/chat/completions``; errors use OpenAI's envelope like the rest of the server.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tuneforge.api.compat.envelope import ok
from tuneforge.api.deps import AppState, get_principal, get_state
from tuneforge.api.v1.chat.protocol import ChatCompletionRequest
from tuneforge.errors import TuneforgeError
from tuneforge.inference.runtime import get_http, get_upstreams
from tuneforge.inference.upstream import open_upstream
from tuneforge.projects import Principal

router = APIRouter(tags=["compat"])


class CompatChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the original API took loose bodies

    text: str = Field(min_length=1)
    model: str | None = None


class _UpstreamError(TuneforgeError):
    def __init__(self, status: int, body: dict):
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        super().__init__(error.get("message") or f"Upstream error {status}", param=error.get("param"),
                         code=error.get("code"))
        self.status_code = status
        self.type = error.get("type") or "invalid_request_error"


@router.post("/chat")
async def chat(body: CompatChatRequest, state: AppState = Depends(get_state),
               principal: Principal = Depends(get_principal)) -> dict:
    model = body.model or state.settings.default_model
    request = ChatCompletionRequest(model=model, messages=[{"role": "user", "content": body.text}])
    upstream = get_upstreams(state).match(model)
    if upstream is not None:
        response = await open_upstream(get_http(state), upstream, "chat/completions",
                                       json.dumps(request.model_dump(exclude_none=True)).encode())
        try:
            data = json.loads(await response.aread())
        finally:
            await response.aclose()
        if response.status_code >= 400:
            raise _UpstreamError(response.status_code, data if isinstance(data, dict) else {})
    else:
        from tuneforge.api.v1.chat import service  # pulls in torch: loaded on first use, not at start-up

        def _prepare() -> service.Prepared:
            with state.db.session() as session:
                return service.prepare(state, session, request, principal.project_id)

        data = await service.complete(state, await run_in_threadpool(_prepare))
    return ok({"content": data["choices"][0]["message"]["content"], "id": data["id"], "model": data["model"]})
