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
from tuneforge.inference.batch import Delta, Finish, GenerationRequest
from tuneforge.inference.engine import BaseInfo, Engine
from tuneforge.inference.prompts import adapter_chat_template, normalize_messages, render_chat
from tuneforge.models import catalog
from tuneforge.models.catalog import ServedModel
from tuneforge.serving.requests import UNSUPPORTED, ChatCompletionRequest


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
    if body.tool_choice not in (None, "none") or body.function_call not in (None, "none"):
        param = "tool_choice" if body.tool_choice not in (None, "none") else "function_call"
        raise InvalidRequest(f"'{param}' is not supported by this server (tools are not implemented).",
                             param=param, code="unsupported_parameter")
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


def response_format(value: dict | None) -> bool:
    """True for ``json_object``; ``text`` or none is plain text; anything else is refused."""
    if value is None:
        return False
    kind = value.get("type")
    if kind == "text":
        return False
    if kind == "json_object":
        return True
    if kind == "json_schema":
        raise InvalidRequest("response_format 'json_schema' is not supported; use 'json_object' (output "
                             "guaranteed to be a JSON object).", param="response_format.type",
                             code="unsupported_parameter")
    raise InvalidRequest(f"Invalid 'response_format.type': {kind!r}.", param="response_format.type")


def prepare(state, session: Session, body: ChatCompletionRequest, project_id: str) -> Prepared:
    """Blocking (loads the tokenizer on first use): run it in a worker thread."""
    check_unsupported(body)
    json_object = response_format(body.response_format)
    served = served_model(state, session, body.model, project_id)
    n = body.n or 1
    if n > state.settings.serve_max_n:
        raise InvalidRequest(f"Invalid 'n': at most {state.settings.serve_max_n} choices per request.", param="n")
    engine: Engine = state.engine
    info = engine.info(served.base_model)
    messages = normalize_messages(body.messages)
    prompt = render_chat(info.tokenizer, messages, adapter_chat_template(served.adapter_dir))
    requested = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    if json_object and requested is not None and requested < 2:
        raise InvalidRequest("response_format 'json_object' needs max_tokens >= 2 (the shortest object is '{}').",
                             param="max_tokens")
    if json_object and body.stop:
        raise InvalidRequest("'stop' cannot be combined with response_format 'json_object': a stop sequence "
                             "could cut the JSON.", param="stop")
    budget = P.completion_budget(requested, len(prompt), info, state.settings.serve_default_max_tokens)
    sampling = P.sampling_params(
        max_tokens=budget, temperature=body.temperature, top_p=body.top_p, seed=body.seed,
        presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty, bias=body.logit_bias,
        stop=body.stop, logprobs=bool(body.logprobs), top_logprobs=body.top_logprobs or 0,
        json_object=json_object, info=info)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    adapter = adapter_key(served.adapter_dir) if served.adapter_dir else None
    return Prepared(new_id("chatcmpl-"), int(time.time()), body.model, info,
                    GenerationRequest(served.base_model, served.adapter_dir, prompt, sampling, n),
                    len(prompt), P.fingerprint(info.path, adapter), bool(body.logprobs), include_usage)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def complete(state, prepared: Prepared) -> dict:
    finishes: dict[int, Finish] = {}
    async for event in state.engine.stream(prepared.request):
        if isinstance(event, Finish):
            finishes[event.index] = event
    choices = []
    for index in range(prepared.request.n):
        fin = finishes[index]
        logprobs = {"content": P.chat_logprobs(prepared.info, fin.logprobs), "refusal": None} \
            if prepared.logprobs else None
        choices.append({"index": index, "finish_reason": fin.reason, "logprobs": logprobs,
                        "message": {"role": "assistant", "content": fin.text, "refusal": None, "annotations": []}})
    completion_tokens = sum(f.completion_tokens for f in finishes.values())
    return {"id": prepared.id, "object": "chat.completion", "created": prepared.created, "model": prepared.model,
            "choices": choices, "usage": usage(prepared.prompt_tokens, completion_tokens),
            "system_fingerprint": prepared.fingerprint, "service_tier": None}


async def open_stream(state, prepared: Prepared) -> AsyncIterator[dict]:
    """Start generating and wait for the first event, so a failure (e.g. weights that do not load) is
    still an HTTP error; then hand back the chunk iterator."""
    events = state.engine.stream(prepared.request)
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()
        raise
    return _chunks(prepared, first, events)


async def _chunks(prepared: Prepared, first, events) -> AsyncIterator[dict]:
    def chunk(choices: list[dict], **extra) -> dict:
        out = {"id": prepared.id, "object": "chat.completion.chunk", "created": prepared.created,
               "model": prepared.model, "system_fingerprint": prepared.fingerprint, "choices": choices}
        if prepared.include_usage:
            out["usage"] = None
        out.update(extra)
        return out

    completion_tokens = 0
    try:
        for index in range(prepared.request.n):
            yield chunk([{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                          "finish_reason": None}])
        event = first
        while event is not None:
            if isinstance(event, Delta):
                logprobs = {"content": P.chat_logprobs(prepared.info, event.logprobs), "refusal": None} \
                    if prepared.logprobs else None
                yield chunk([{"index": event.index, "delta": {"content": event.text}, "logprobs": logprobs,
                              "finish_reason": None}])
            elif isinstance(event, Finish):
                completion_tokens += event.completion_tokens
                yield chunk([{"index": event.index, "delta": {}, "logprobs": None, "finish_reason": event.reason}])
            event = await anext(events, None)
        if prepared.include_usage:
            yield chunk([], usage=usage(prepared.prompt_tokens, completion_tokens))
    finally:
        await events.aclose()  # cancels the request in the engine if the client went away
