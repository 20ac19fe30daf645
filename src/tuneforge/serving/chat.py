"""Chat completions on local models: resolve the model, render the prompt, run the engine, shape the answer.

``prepare`` does every check that can fail (model, parameters, context length) before anything is
generated or streamed, so errors come back as proper HTTP errors, never half an SSE stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tuneforge.errors import InvalidRequest
from tuneforge.ids import new_id
from tuneforge.inference import params as P
from tuneforge.inference.adapters import adapter_key, check_adapter_dir
from tuneforge.inference.base_info import BaseInfo
from tuneforge.inference.batch import Delta, Finish, GenerationRequest
from tuneforge.inference.engine import Engine
from tuneforge.inference.prompts import adapter_chat_template, normalize_messages, render_chat
from tuneforge.models import catalog
from tuneforge.models.catalog import ServedModel
from tuneforge.serving import structured
from tuneforge.serving.requests import UNSUPPORTED, ChatCompletionRequest
from tuneforge.serving.structured import ChoiceDone, OutputParser, TextDelta, ToolCallArguments, ToolCallStart


@dataclass
class Prepared:
    id: str
    created: int
    model: str
    info: BaseInfo
    request: GenerationRequest
    prompt_tokens: int
    fingerprint: str
    logprobs: bool
    include_usage: bool
    plan: structured.Plan


def served_model(state, session: Session, model: str, project_id: str) -> ServedModel:
    """The local model behind ``model`` (404 ``model_not_found`` for unknown or another project's)."""
    if model == state.settings.embedding_model:
        raise InvalidRequest(f"'{model}' is an embeddings model; use /v1/embeddings with it.", param="model",
                             code="model_not_supported")
    served = catalog.resolve(session, state.registry, state.settings, model, project_id)
    if served.adapter_dir is not None:
        check_adapter_dir(served.adapter_dir)
    return served


def check_unsupported(body: ChatCompletionRequest) -> None:
    for name, what in UNSUPPORTED.items():
        if getattr(body, name) not in (None, []):
            raise InvalidRequest(f"'{name}' is not supported by this server ({what} is not implemented).",
                                 param=name, code="unsupported_parameter")
    if body.modalities not in (None, ["text"]):
        raise InvalidRequest("Only the 'text' modality is supported.", param="modalities",
                             code="unsupported_parameter")
    for name in ("reasoning_effort", "verbosity"):
        if getattr(body, name) is not None:
            raise InvalidRequest(f"'{name}' is only supported by reasoning models; this server's models are not.",
                                 param=name, code="unsupported_parameter")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             param="stream_options")
    if body.top_logprobs and not body.logprobs:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")


def prepare(state, session: Session, body: ChatCompletionRequest, project_id: str) -> Prepared:
    """Blocking (loads the tokenizer on first use): run it in a worker thread."""
    check_unsupported(body)
    served = served_model(state, session, body.model, project_id)
    n = body.n or 1
    if n > state.settings.serve_max_n:
        raise InvalidRequest(f"Invalid 'n': at most {state.settings.serve_max_n} choices per request.", param="n")
    engine: Engine = state.engine
    info = engine.info(served.base_model)
    plan = structured.plan(info, tools=body.tools, tool_choice=body.tool_choice,
                           parallel_tool_calls=body.parallel_tool_calls, response_format=body.response_format,
                           functions=body.functions, function_call=body.function_call)
    messages = normalize_messages(body.messages)
    prompt = render_chat(info.tokenizer, messages, adapter_chat_template(served.adapter_dir), plan.tools)
    requested = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    if plan.constraint is not None and requested is not None and requested < 2:
        raise InvalidRequest("Structured output needs max_tokens >= 2 (the shortest object is '{}').",
                             param="max_tokens")
    if plan.structured and body.stop:
        raise InvalidRequest("'stop' cannot be combined with structured output or required tool calls: a stop "
                             "sequence could cut the JSON.", param="stop")
    budget = P.completion_budget(requested, len(prompt), info, state.settings.serve_default_max_tokens)
    sampling = P.sampling_params(
        max_tokens=budget, temperature=body.temperature, top_p=body.top_p, seed=body.seed,
        presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty, bias=body.logit_bias,
        stop=body.stop, logprobs=bool(body.logprobs), top_logprobs=body.top_logprobs or 0,
        info=info, constraint=plan.constraint)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    adapter = adapter_key(served.adapter_dir) if served.adapter_dir else None
    return Prepared(new_id("chatcmpl-"), int(time.time()), body.model, info,
                    GenerationRequest(served.base_model, served.adapter_dir, prompt, sampling, n),
                    len(prompt), P.fingerprint(info.path, adapter), bool(body.logprobs), include_usage, plan)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def choices(state, prepared: Prepared) -> list[ChoiceDone]:
    """Every choice of a whole (non-streamed) answer: text or tool calls."""
    finishes: dict[int, Finish] = {}
    async for event in state.engine.stream(prepared.request):
        if isinstance(event, Finish):
            finishes[event.index] = event
    return [structured.parse(i, prepared.plan.calls, finishes[i].text, finishes[i].reason,
                             finishes[i].completion_tokens, finishes[i].logprobs)
            for i in range(prepared.request.n)]


def message(done: ChoiceDone) -> dict:
    """The chat.completion ``message`` of one choice."""
    calls = [c.to_dict() for c in done.tool_calls] if done.tool_calls else None
    out = {"role": "assistant", "content": done.text, "refusal": None, "annotations": []}
    if calls:
        out["tool_calls"] = calls
    return out


async def complete(state, prepared: Prepared) -> dict:
    done = await choices(state, prepared)
    out = []
    for d in done:
        logprobs = {"content": P.chat_logprobs(prepared.info, d.logprobs), "refusal": None} \
            if prepared.logprobs else None
        out.append({"index": d.index, "finish_reason": d.finish_reason, "logprobs": logprobs, "message": message(d)})
    completion_tokens = sum(d.completion_tokens for d in done)
    return {"id": prepared.id, "object": "chat.completion", "created": prepared.created, "model": prepared.model,
            "choices": out, "usage": usage(prepared.prompt_tokens, completion_tokens),
            "system_fingerprint": prepared.fingerprint, "service_tier": None}


async def open_events(state, prepared: Prepared) -> AsyncIterator:
    """Start generating and wait for the first engine event, so a failure (e.g. weights that do not load)
    is still an HTTP error; then hand back the typed event iterator (``structured.TextDelta``,
    ``ToolCallStart``, ``ToolCallArguments``, ``ChoiceDone``)."""
    events = state.engine.stream(prepared.request)
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    return _typed(prepared, first, events)


async def _typed(prepared: Prepared, first, events) -> AsyncIterator:
    parsers = [OutputParser(i, prepared.plan.calls) for i in range(prepared.request.n)]
    broken: set[int] = set()  # choices whose text stopped reading as calls (cannot happen when constrained)
    try:
        event = first
        while event is not None:
            if isinstance(event, Delta):
                parser = parsers[event.index]
                try:
                    out = parser.feed(event.text) if event.index not in broken else \
                        [TextDelta(event.index, event.text)]
                except ValueError:
                    broken.add(event.index)
                    out = [TextDelta(event.index, parser.buffer)]
                for item in out:
                    if isinstance(item, TextDelta):
                        item.logprobs = event.logprobs
                    yield item
            elif isinstance(event, Finish):
                parser = parsers[event.index]
                for item in parser.finish():
                    yield item
                if event.index in broken:
                    yield ChoiceDone(event.index, event.reason, event.text, [], event.completion_tokens,
                                     event.logprobs)
                else:
                    yield parser.done(event.reason, event.text, event.completion_tokens, event.logprobs)
            event = await anext(events, None)
    finally:
        await events.aclose()  # cancels the request in the engine if the client went away


async def open_stream(state, prepared: Prepared) -> AsyncIterator[dict]:
    """``open_events`` shaped as chat.completion.chunk objects."""
    return _chunks(prepared, await open_events(state, prepared))


async def _chunks(prepared: Prepared, events) -> AsyncIterator[dict]:
    def chunk(choices: list[dict], **extra) -> dict:
        out = {"id": prepared.id, "object": "chat.completion.chunk", "created": prepared.created,
               "model": prepared.model, "system_fingerprint": prepared.fingerprint, "choices": choices}
        if prepared.include_usage:
            out["usage"] = None
        out.update(extra)
        return out

    def delta(index: int, body: dict, logprobs=None) -> dict:
        return chunk([{"index": index, "delta": body, "logprobs": logprobs, "finish_reason": None}])

    completion_tokens = 0
    try:
        for index in range(prepared.request.n):
            yield delta(index, {"role": "assistant", "content": ""})
        async for event in events:
            if isinstance(event, TextDelta):
                logprobs = {"content": P.chat_logprobs(prepared.info, event.logprobs), "refusal": None} \
                    if prepared.logprobs else None
                if event.text or logprobs:
                    yield delta(event.index, {"content": event.text}, logprobs)
            elif isinstance(event, ToolCallStart):
                # OpenAI's order: id, type and name first, then the arguments in pieces.
                yield delta(event.index, {"tool_calls": [{"index": event.call_index, "id": event.id,
                                                          "type": "function",
                                                          "function": {"name": event.name, "arguments": ""}}]})
            elif isinstance(event, ToolCallArguments):
                yield delta(event.index, {"tool_calls": [{"index": event.call_index,
                                                          "function": {"arguments": event.text}}]})
            elif isinstance(event, ChoiceDone):
                completion_tokens += event.completion_tokens
                yield chunk([{"index": event.index, "delta": {}, "logprobs": None,
                              "finish_reason": event.finish_reason}])
        if prepared.include_usage:
            yield chunk([], usage=usage(prepared.prompt_tokens, completion_tokens))
    finally:
        await events.aclose()
