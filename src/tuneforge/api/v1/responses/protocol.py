"""Wire shapes of /v1/responses (the create request is the responses service's input model)."""

from __future__ import annotations

from typing import Any

from tuneforge.api.schemas import OpenBody
from tuneforge.responses.params import ResponseCreateRequest


class InputTokensRequest(OpenBody):
    model: str | None = None
    input: str | list[Any] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    truncation: str | None = None


__all__ = ["InputTokensRequest", "ResponseCreateRequest"]
