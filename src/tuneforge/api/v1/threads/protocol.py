"""Wire shapes of /v1/threads requests: threads, messages and runs (Assistants v2)."""

from __future__ import annotations

from typing import Any

from tuneforge.api.schemas import OpenBody


class CreateThreadRequest(OpenBody):
    messages: list[dict[str, Any]] | None = None
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class ModifyThreadRequest(OpenBody):
    tool_resources: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class CreateMessageRequest(OpenBody):
    role: str
    content: str | list[dict[str, Any]]
    attachments: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None


class ModifyRequest(OpenBody):
    """Messages and runs: only their metadata can change."""

    metadata: dict[str, Any] | None = None


class _RunFields(OpenBody):
    model: str | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: dict[str, Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    response_format: Any = None
    mask: str | None = None  # tuneforge extension: a mask's system prompt and few-shot messages


class CreateRunRequest(_RunFields):
    assistant_id: str
    additional_instructions: str | None = None
    additional_messages: list[dict[str, Any]] | None = None


class CreateThreadAndRunRequest(_RunFields):
    assistant_id: str
    thread: dict[str, Any] | None = None
    tool_resources: dict[str, Any] | None = None


class SubmitToolOutputsRequest(OpenBody):
    tool_outputs: list[dict[str, Any]]
    stream: bool | None = None
