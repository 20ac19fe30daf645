"""Wire shapes of /v1/assistants requests (Assistants v2, kept as a legacy surface)."""

from __future__ import annotations

from typing import Any

from tuneforge.api.schemas import OpenBody


class _AssistantFields(OpenBody):
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = None
    reasoning_effort: str | None = None


class CreateAssistantRequest(_AssistantFields):
    model: str


class ModifyAssistantRequest(_AssistantFields):
    model: str | None = None
