"""Generating an answer with the serving engine (``tuneforge.inference``), from a worker thread.

This adapter only uses the engine's public API — ``info(base)`` for the tokenizer and context
length, ``generate(request)`` for a blocking stream of ``Delta``/``Finish`` events — plus the
serving code's chat-template rendering, so a fine-tuned model sees prompts shaped as it was trained.
The engine is the runtime's, shared with the chat API (``Runtime.engine``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from tuneforge.errors import ServerError
from tuneforge.gateway import Upstream

# Room kept for the answer when the prompt is packed and the client set no completion budget; the answer
# itself is not capped by it (it may run to the context limit, as on OpenAI).
ANSWER_RESERVE = 512
# Upstream models (gpt-4o family and the like) have large contexts; the provider enforces the real limit,
# this only sizes our prompt budget. Tokens are counted with cl100k_base, offline.
UPSTREAM_CONTEXT = 128_000


@dataclass
class Model:
    """A resolved model ready to count and generate."""

    id: str
    base_model: str
    adapter_dir: object
    tokenizer: object
    template: str | None
    context_length: int

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: list[dict]) -> list[int]:
        from tuneforge.inference.prompts import render_chat

        return render_chat(self.tokenizer, messages, self.template)

    def count_messages(self, messages: list[dict]) -> int:
        return len(self.render(messages))


@lru_cache(maxsize=1)
def _cl100k():
    from tuneforge.data import get_openai_encoding

    return get_openai_encoding("cl100k_base")


@dataclass
class UpstreamModel:
    """A model served by an upstream provider (``TUNEFORGE_UPSTREAMS``): generation is forwarded there."""

    id: str
    upstream: Upstream
    context_length: int = UPSTREAM_CONTEXT

    def count(self, text: str) -> int:
        return len(_cl100k().encode_ordinary(text))

    def count_messages(self, messages: list[dict]) -> int:
        # OpenAI's documented overhead: ~4 tokens per message and 3 to prime the reply
        return sum(4 + self.count(m.get("content") or "") for m in messages) + 3


@dataclass
class Outcome:
    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int


class EngineBackend:
    def __init__(self, state):
        self.state = state

    def model(self, session, model_id: str, project_id: str) -> Model | UpstreamModel:
        from tuneforge.inference.prompts import adapter_chat_template
        from tuneforge.models import catalog

        upstream = self.state.gateway.resolve(model_id)
        if upstream is not None:
            return UpstreamModel(model_id, upstream)

        served = catalog.resolve(session, self.state.registry, self.state.settings, model_id, project_id)
        info = self.state.engine.info(served.base_model)
        return Model(served.id, served.base_model, served.adapter_dir, info.tokenizer,
                     adapter_chat_template(served.adapter_dir), int(served.context_length or info.context_length))

    def generate(self, model: Model, messages: list[dict], *, max_tokens: int | None, temperature: float, top_p: float,
                 on_delta: Callable[[str], None], should_stop: Callable[[], bool]) -> Outcome:
        from tuneforge.inference.batch import Delta, Finish, GenerationRequest
        from tuneforge.inference.sampling import SamplingParams

        if isinstance(model, UpstreamModel):
            return self._generate_upstream(model, messages, max_tokens=max_tokens, temperature=temperature,
                                           top_p=top_p, on_delta=on_delta, should_stop=should_stop)
        prompt = model.render(messages)
        if max_tokens is None:  # no client budget: up to the context limit
            max_tokens = max(1, model.context_length - len(prompt))
        request = GenerationRequest(model.base_model, model.adapter_dir, prompt,
                                    SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p))
        parts: list[str] = []
        events: Iterator = self.state.engine.generate(request, timeout=600)
        try:
            for event in events:
                if isinstance(event, Delta) and event.text:
                    parts.append(event.text)
                    on_delta(event.text)
                elif isinstance(event, Finish):
                    return Outcome(event.text, event.reason, len(prompt), event.completion_tokens)
                if should_stop():
                    return Outcome("".join(parts), "cancelled", len(prompt), len(parts))
        finally:
            events.close()  # cancels the request in the engine if it is still running
        raise ServerError("The generation engine stopped without finishing the answer.")

    def _generate_upstream(self, model: UpstreamModel, messages: list[dict], *, max_tokens: int | None,
                           temperature: float,
                           top_p: float, on_delta: Callable[[str], None],
                           should_stop: Callable[[], bool]) -> Outcome:
        parts: list[str] = []
        finish, usage = "stop", None
        payload = {"model": model.id, "messages": messages, "temperature": temperature, "top_p": top_p,
                   "stream": True, "stream_options": {"include_usage": True}}
        if max_tokens is not None:  # otherwise the provider's own limit applies, as for its direct clients
            payload["max_completion_tokens"] = max_tokens
        chunks = self.state.gateway.stream(model.upstream, "chat/completions", payload)
        try:  # an UpstreamError (status, redacted message) propagates and fails the run with it
            for chunk in chunks:
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        parts.append(content)
                        on_delta(content)
                    if choice.get("finish_reason"):
                        finish = "length" if choice["finish_reason"] == "length" else "stop"
                if should_stop():  # closing the stream hangs up on the provider, which stops it
                    return Outcome("".join(parts), "cancelled", model.count_messages(messages), len(parts))
        finally:
            chunks.close()
        text = "".join(parts)
        prompt_tokens = usage.get("prompt_tokens") if usage else model.count_messages(messages)
        completion_tokens = usage.get("completion_tokens") if usage else model.count(text)
        return Outcome(text, finish, prompt_tokens, completion_tokens)
