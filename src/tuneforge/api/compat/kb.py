"""``POST /kb/ask``: the simple API's way to ask a knowledge base (a tuneforge addition to the old API).

Body: ``{"text": question, "kb": vector store name or id, "model": optional}`` →
``{"info": "ok", "response": {"content", "citations": [{"marker", "file_id", "filename"}], "id", "model", ...}}``.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tuneforge.api.compat.envelope import ok
from tuneforge.api.deps import PrincipalDep, RuntimeDep

router = APIRouter(tags=["compat"])


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="The question")
    kb: str = Field(min_length=1, description="Knowledge base: a vector store name or vs_ id")
    model: str | None = Field(
        None, description="Model that writes the answer (default: the server's default)"
    )
    max_tokens: int = Field(256, ge=1, le=4096)


@router.post("/kb/ask")
async def kb_ask(state: RuntimeDep, principal: PrincipalDep, body: AskRequest) -> dict:
    from tuneforge.assistants.ask import ask

    return ok(
        await run_in_threadpool(
            ask,
            state,
            principal.project_id,
            kb=body.kb,
            question=body.text,
            model=body.model,
            max_tokens=body.max_tokens,
        )
    )
