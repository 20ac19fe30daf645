"""Function calling and structured outputs on local models, as one service call for other APIs
(the Responses API, Assistants runs): messages + tools + tool_choice + response format in, text or
tool calls out, whole or streamed.

    request = ChatCompletionRequest(model=..., messages=[...],   # chat-completions shapes throughout:
        tools=[{"type": "function", "function": {"name", "description", "parameters"}}],
        tool_choice="auto" | "none" | "required" | {"type": "function", "function": {"name": ...}},
        parallel_tool_calls=True, response_format={"type": "json_schema", "json_schema": {...}},
        max_completion_tokens=..., temperature=..., seed=...)
    # history: assistant messages with "tool_calls" and role "tool" messages with "tool_call_id"

    answer = await tools.generate(rt, project_id, request)        # -> Answer
    answer.choices[0].text / .tool_calls[i].{id,name,arguments} / .finish_reason
    answer.prompt_tokens, answer.completion_tokens

    stream = await tools.stream(rt, project_id, request)          # -> Stream (async iterator)
    async for event in stream:  # TextDelta(index, text) | ToolCallStart(index, call_index, id, name)
        ...                     # | ToolCallArguments(index, call_index, text) | ChoiceDone(...)

Both raise ``InvalidRequest`` (400) for bad or unsupported parameters (naming them, e.g. a schema
keyword the grammar engine cannot enforce) and ``NotFound`` for unknown models before anything is
generated. Local models only: callers route upstream models through ``rt.gateway`` themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuneforge.serving.requests import ChatCompletionRequest
from tuneforge.serving.structured import ChoiceDone, TextDelta, ToolCall, ToolCallArguments, ToolCallStart

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

__all__ = ["Answer", "ChoiceDone", "Stream", "TextDelta", "ToolCall", "ToolCallArguments", "ToolCallStart",
           "generate", "stream"]


@dataclass
class Answer:
    id: str
    model: str
    choices: list[ChoiceDone]
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Stream:
    """Typed events of a streamed answer; ``prompt_tokens`` is known before the first event."""

    id: str
    model: str
    prompt_tokens: int
    events: AsyncIterator

    def __aiter__(self):
        return self.events.__aiter__()

    async def aclose(self) -> None:
        await self.events.aclose()


async def _prepare(rt: Runtime, project_id: str, request: ChatCompletionRequest):
    from tuneforge.serving import chat  # pulls in torch: loaded on first use

    def run():
        with rt.db.session() as session:
            return chat.prepare(rt, session, request, project_id)

    return chat, await asyncio.to_thread(run)


async def generate(rt: Runtime, project_id: str, request: ChatCompletionRequest) -> Answer:
    """The whole answer: per choice, text or tool calls."""
    chat, prepared = await _prepare(rt, project_id, request)
    done = await chat.choices(rt, prepared)
    return Answer(prepared.id, prepared.model, done, prepared.prompt_tokens, sum(d.completion_tokens for d in done))


async def stream(rt: Runtime, project_id: str, request: ChatCompletionRequest) -> Stream:
    """The answer as typed events; closing the stream cancels generation."""
    chat, prepared = await _prepare(rt, project_id, request)
    return Stream(prepared.id, prepared.model, prepared.prompt_tokens, await chat.open_events(rt, prepared))
