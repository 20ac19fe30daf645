"""Legacy completions: raw prompts (text or token ids, one or many), ``echo``, ``stop``, streaming.

Several prompts are submitted to the engine together, so they share forward passes. Choice ``i*n + j``
is the ``j``-th sample of prompt ``i``, as in OpenAI's API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from tuneforge.errors import InvalidRequest
from tuneforge.ids import new_id
from tuneforge.inference import params as P
from tuneforge.inference.adapters import adapter_key
from tuneforge.inference.base_info import BaseInfo
from tuneforge.inference.batch import Delta, Finish, GenerationRequest
from tuneforge.serving.chat import served_model, usage
from tuneforge.serving.requests import CompletionRequest

MAX_PROMPTS = 64


@dataclass
class Prepared:
    id: str
    created: int
    model: str
    info: BaseInfo
    requests: list[GenerationRequest]
    prompt_texts: list[str]
    n: int
    echo: bool
    logprobs: int | None
    include_usage: bool
    fingerprint: str
    prompt_tokens: int = field(init=False)

    def __post_init__(self):
        self.prompt_tokens = sum(len(r.prompt_ids) for r in self.requests)


def _prompts(prompt, info: BaseInfo) -> list[tuple[list[int], str]]:
    """(token ids, text) per prompt; the text is what ``echo`` returns."""
    if isinstance(prompt, str):
        prompt = [prompt]
    if not prompt:
        raise InvalidRequest("'prompt' must not be empty.", param="prompt")
    if all(isinstance(t, int) for t in prompt):
        prompt = [prompt]
    if len(prompt) > MAX_PROMPTS:
        raise InvalidRequest(f"At most {MAX_PROMPTS} prompts per request.", param="prompt")
    out = []
    for item in prompt:
        if isinstance(item, str):
            ids = info.tokenizer(item)["input_ids"]  # the tokenizer's own BOS rules, as in training
            text = item
        else:
            ids = list(item)
            if any(not 0 <= t < info.vocab_size for t in ids):
                raise InvalidRequest(f"Invalid 'prompt': token ids must be between 0 and {info.vocab_size - 1}.",
                                     param="prompt")
            text = info.tokenizer.decode(ids, skip_special_tokens=False)
        if not ids:
            raise InvalidRequest("'prompt' must not contain empty prompts.", param="prompt")
        out.append((ids, text))
    return out


def prepare(state, session: Session, body: CompletionRequest, project_id: str) -> Prepared:
    if body.suffix:
        raise InvalidRequest("'suffix' is not supported: inserting text needs a fill-in-the-middle model, and "
                             "this server's models are not.", param="suffix", code="unsupported_parameter")
    n = body.n or 1
    if body.best_of is not None and body.best_of != n:
        raise InvalidRequest("'best_of' is not supported (only best_of == n).", param="best_of",
                             code="unsupported_parameter")
    if body.echo and body.logprobs is not None:
        raise InvalidRequest("'echo' together with 'logprobs' (prompt logprobs) is not supported.",
                             param="logprobs", code="unsupported_parameter")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             param="stream_options")
    served = served_model(state, session, body.model, project_id)
    info = state.engine.info(served.base_model)
    prompts = _prompts(body.prompt, info)
    if n * len(prompts) > state.settings.serve_max_n * 4:
        raise InvalidRequest("Too many choices: n times the number of prompts is limited to "
                             f"{state.settings.serve_max_n * 4}.", param="n")
    if body.max_tokens == 0 and not body.echo:
        raise InvalidRequest("'max_tokens' must be at least 1 (or use 'echo').", param="max_tokens")
    requests = []
    for ids, _ in prompts:
        budget = P.completion_budget(body.max_tokens, len(ids), info, state.settings.serve_default_max_tokens,
                                     what="prompt", param="prompt")
        sampling = P.sampling_params(
            max_tokens=max(budget, 1), temperature=body.temperature, top_p=body.top_p, seed=body.seed,
            presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
            bias=body.logit_bias, stop=body.stop, logprobs=body.logprobs is not None,
            top_logprobs=body.logprobs or 0, info=info)
        requests.append(GenerationRequest(served.base_model, served.adapter_dir, ids, sampling, n))
    texts = [text if body.echo else "" for _, text in prompts]
    adapter = adapter_key(served.adapter_dir) if served.adapter_dir else None
    return Prepared(new_id("cmpl-"), int(time.time()), body.model, info,
                    [] if body.max_tokens == 0 else requests, texts, n, bool(body.echo), body.logprobs,
                    bool((body.stream_options or {}).get("include_usage")), P.fingerprint(info.path, adapter))


async def _merged(state, requests: list[GenerationRequest]) -> AsyncIterator[tuple[int, object]]:
    """Events of several requests as they come, tagged with the request's position."""
    engine = state.engine
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, request: GenerationRequest) -> None:
        try:
            async for event in engine.stream(request):
                await queue.put((i, event))
        except Exception as exc:  # noqa: BLE001 - re-raised by the consumer
            await queue.put((i, exc))
        await queue.put((i, None))

    tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(requests)]
    try:
        open_streams = len(tasks)
        while open_streams:
            i, event = await queue.get()
            if event is None:
                open_streams -= 1
            elif isinstance(event, Exception):
                raise event
            else:
                yield i, event
    finally:
        for task in tasks:
            task.cancel()  # closes each engine stream, which cancels its generation


async def complete(state, prepared: Prepared) -> dict:
    texts: dict[int, str] = {}
    finishes: dict[int, Finish] = {}
    async for i, event in _merged(state, prepared.requests):
        if isinstance(event, Finish):
            finishes[i * prepared.n + event.index] = event
    choices = []
    for index in range(len(prepared.prompt_texts) * prepared.n):
        prefix = prepared.prompt_texts[index // prepared.n]
        fin = finishes.get(index)
        text = prefix + (fin.text if fin else "")
        texts[index] = text
        logprobs = P.legacy_logprobs(prepared.info, fin.logprobs, len(prefix)) \
            if prepared.logprobs is not None and fin else None
        choices.append({"index": index, "text": text, "logprobs": logprobs,
                        "finish_reason": fin.reason if fin else "length"})
    completion_tokens = sum(f.completion_tokens for f in finishes.values())
    return {"id": prepared.id, "object": "text_completion", "created": prepared.created, "model": prepared.model,
            "choices": choices, "usage": usage(prepared.prompt_tokens, completion_tokens),
            "system_fingerprint": prepared.fingerprint}


async def open_stream(state, prepared: Prepared) -> AsyncIterator[dict]:
    events = _merged(state, prepared.requests)
    try:
        first = await anext(events, None)
    except BaseException:
        await events.aclose()
        raise
    return _chunks(prepared, first, events)


async def _chunks(prepared: Prepared, first, events) -> AsyncIterator[dict]:
    def chunk(choices: list[dict], **extra) -> dict:
        out = {"id": prepared.id, "object": "text_completion", "created": prepared.created,
               "model": prepared.model, "system_fingerprint": prepared.fingerprint, "choices": choices}
        if prepared.include_usage:
            out["usage"] = None
        out.update(extra)
        return out

    offsets = {}
    completion_tokens = 0
    try:
        if prepared.echo:
            for index in range(len(prepared.prompt_texts) * prepared.n):
                offsets[index] = len(prepared.prompt_texts[index // prepared.n])
                yield chunk([{"index": index, "text": prepared.prompt_texts[index // prepared.n], "logprobs": None,
                              "finish_reason": None if prepared.requests else "length"}])
        item = first
        while item is not None:
            i, event = item
            index = i * prepared.n + event.index
            if isinstance(event, Delta):
                logprobs = None
                if prepared.logprobs is not None:
                    logprobs = P.legacy_logprobs(prepared.info, event.logprobs, offsets.get(index, 0))
                offsets[index] = offsets.get(index, 0) + len(event.text)
                yield chunk([{"index": index, "text": event.text, "logprobs": logprobs, "finish_reason": None}])
            elif isinstance(event, Finish):
                completion_tokens += event.completion_tokens
                yield chunk([{"index": index, "text": "", "logprobs": None, "finish_reason": event.reason}])
            item = await anext(events, None)
        if prepared.include_usage:
            yield chunk([], usage=usage(prepared.prompt_tokens, completion_tokens))
    finally:
        await events.aclose()
