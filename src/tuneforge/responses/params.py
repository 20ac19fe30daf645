"""The create request of ``/v1/responses``: its typed model (also the wire schema the router publishes)
and every check of a parameter this server cannot honour — a 400 naming it, never silently ignored.

Accepted and ignored (they change nothing a client can observe here): ``user``, ``safety_identifier``,
``prompt_cache_key``, ``prompt_cache_retention``, ``service_tier``, ``stream_options``, ``reasoning``
(no model here reasons) and ``include: ["reasoning.encrypted_content"]`` (there is no reasoning to include).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuneforge.errors import InvalidRequest

INCLUDE_SUPPORTED = {"file_search_call.results", "message.output_text.logprobs"}
INCLUDE_IGNORED = {"reasoning.encrypted_content"}  # nothing to include: no model here reasons
# Parameters the SDK can send that this server recognises but does not implement.
UNSUPPORTED = {
    "prompt": "reusable prompt templates",
    "max_tool_calls": "a limit on built-in tool calls",
    "context_management": "server-side context compaction",
    "moderation": "moderation policies",
    "image": "image generation settings",
    "access_programs": "access programs",
    "background_options": "background options",
    "prompt_cache_options": "prompt caching options",
}
TOOL_TYPES = ("file_search", "function")


class ResponseCreateRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown names are reported by ``check`` with their name

    model: str
    input: str | list[Any] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    background: bool | None = None
    stream: bool | None = None
    text: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # accepted and ignored (see the module docstring)
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    service_tier: str | None = None
    stream_options: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    # recognised; 400 unless unset
    prompt: Any = None
    max_tool_calls: Any = None
    context_management: Any = None
    moderation: Any = None
    image: Any = None
    access_programs: Any = None
    background_options: Any = None
    prompt_cache_options: Any = None

    @property
    def conversation_id(self) -> str | None:
        if isinstance(self.conversation, dict):
            return self.conversation.get("id")
        return self.conversation

    def text_format(self) -> dict:
        fmt = (self.text or {}).get("format") or {"type": "text"}
        if not isinstance(fmt, dict):
            raise InvalidRequest("Invalid 'text.format': expected an object.", param="text.format")
        return fmt


def check(body: ResponseCreateRequest) -> None:
    """Every parameter this server cannot honour answers 400 naming it."""
    for name in body.model_extra or {}:
        raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    for name, what in UNSUPPORTED.items():
        if getattr(body, name) is not None:
            raise InvalidRequest(f"'{name}' is not supported by this server ({what} is not implemented).",
                                 param=name, code="unsupported_parameter")
    if body.input is None and body.conversation is None and body.previous_response_id is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if body.conversation is not None and body.previous_response_id is not None:
        raise InvalidRequest("'previous_response_id' cannot be used together with 'conversation'.",
                             param="previous_response_id")
    if body.conversation is not None and not isinstance(body.conversation_id, str):
        raise InvalidRequest("Invalid 'conversation': expected an id or {\"id\": ...}.", param="conversation")
    for i, value in enumerate(body.include or []):
        if value not in INCLUDE_SUPPORTED | INCLUDE_IGNORED:
            raise InvalidRequest(f"Invalid 'include[{i}]': {value!r} is not supported by this server. Supported: "
                                 f"{', '.join(sorted(INCLUDE_SUPPORTED))}.", param=f"include[{i}]",
                                 code="unsupported_parameter")
    if body.background and body.stream:
        raise InvalidRequest("'background' responses cannot be streamed by this server; poll them with "
                             "GET /v1/responses/{id}.", param="background", code="unsupported_parameter")
    if body.background and body.store is False:
        raise InvalidRequest("Background responses must be stored: 'store' cannot be false with 'background'.",
                             param="store")
    if body.top_logprobs and "message.output_text.logprobs" not in (body.include or []):
        raise InvalidRequest("'top_logprobs' needs include=['message.output_text.logprobs'].", param="top_logprobs")
    if body.metadata is not None:
        if len(body.metadata) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in body.metadata.items()):
            raise InvalidRequest("Invalid 'metadata': at most 16 pairs, keys up to 64 and values up to 512 "
                                 "characters.", param="metadata")
    fmt = body.text_format()
    if fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(f"Invalid 'text.format.type': {fmt.get('type')!r}.", param="text.format.type")
    if (body.text or {}).get("verbosity") not in (None, "medium"):
        raise InvalidRequest("'text.verbosity' is only supported by reasoning models; this server's are not.",
                             param="text.verbosity", code="unsupported_parameter")
    for i, tool in enumerate(body.tools or []):
        if tool.get("type") not in TOOL_TYPES:
            raise InvalidRequest(f"Tools of type {tool.get('type')!r} are not supported by this server "
                                 f"(supported: {', '.join(TOOL_TYPES)}).", param=f"tools[{i}].type",
                                 code="unsupported_parameter")
    choice = body.tool_choice
    if isinstance(choice, str) and choice not in ("none", "auto", "required"):
        raise InvalidRequest(f"Invalid 'tool_choice': {choice!r}.", param="tool_choice")
    if isinstance(choice, dict) and choice.get("type") not in ("function", "file_search"):
        raise InvalidRequest(f"Invalid 'tool_choice.type': {choice.get('type')!r}.", param="tool_choice.type",
                             code="unsupported_parameter")


def file_search_tool(body: ResponseCreateRequest) -> tuple[int, dict] | None:
    for i, tool in enumerate(body.tools or []):
        if tool.get("type") == "file_search":
            ids = tool.get("vector_store_ids")
            if not isinstance(ids, list) or not ids or not all(isinstance(x, str) for x in ids):
                raise InvalidRequest("'vector_store_ids' must be a non-empty list of vector store ids.",
                                     param=f"tools[{i}].vector_store_ids")
            limit = tool.get("max_num_results", 10)
            if not isinstance(limit, int) or not 1 <= limit <= 50:
                raise InvalidRequest("'max_num_results' must be between 1 and 50.", param=f"tools[{i}].max_num_results")
            return i, tool
    return None
