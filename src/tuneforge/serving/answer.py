"""A whole chat answer (not streamed) from whichever side serves the model: for callers that want the
text, not the HTTP stream — the simple API's ``/chat`` and the knowledge-base ``ask``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tuneforge.serving.requests import ChatCompletionRequest

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime


async def chat_once(rt: Runtime, project_id: str, request: ChatCompletionRequest) -> dict:
    """An OpenAI chat.completion object; upstream errors raise ``UpstreamError`` (their status, redacted)."""
    upstream = rt.gateway.resolve(request.model)
    if upstream is not None:
        return await rt.gateway.post_json(upstream, "chat/completions", request.model_dump(exclude_none=True))
    from tuneforge.serving import chat  # pulls in torch: loaded on first use, not at start-up

    def _prepare() -> chat.Prepared:
        with rt.db.session() as session:
            return chat.prepare(rt, session, request, project_id)

    return await chat.complete(rt, await asyncio.to_thread(_prepare))
