"""Creating a response on a local model: ``plan`` does every check that can fail (parameters, context,
conversation, file search, prompt length and truncation) in a worker thread before anything is
generated or streamed; ``Generation`` then runs the engine and emits the typed events, and stores the
finished response (and appends it to its conversation).

The prompt is rendered by chat completions' service (``tuneforge.serving.chat.prepare``) from the chat
messages the items become, so responses and chat completions share one set of sampling and
constrained-decoding rules (``generation.chat_extras``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from sqlalchemy.orm import Session

from tuneforge.db.models import ResponseRow, now_s
from tuneforge.errors import InvalidRequest, NotFound, TuneforgeError
from tuneforge.ids import new_id
from tuneforge.inference import params as P
from tuneforge.responses import conversations, generation, store
from tuneforge.responses import search as search_mod
from tuneforge.responses.events import EventBuilder
from tuneforge.responses.items import last_user_text, normalize_input, output_message, to_messages
from tuneforge.responses.params import ResponseCreateRequest, check, file_search_tool
from tuneforge.serving import chat
from tuneforge.serving.requests import ChatCompletionRequest
from tuneforge.serving.structured import ChoiceDone, TextDelta, ToolCallArguments, ToolCallStart

log = logging.getLogger("tuneforge.responses")
ECHOED = ("instructions", "max_output_tokens", "temperature", "top_p", "top_logprobs", "text", "tool_choice",
          "tools", "truncation", "user", "parallel_tool_calls", "safety_identifier", "prompt_cache_key")


@dataclass
class Plan:
    id: str
    created_at: int
    project_id: str
    model: str
    params: dict
    context: list[dict]
    input_items: list[dict]
    prepared: chat.Prepared
    search: search_mod.Search | None
    logprobs: bool
    store: bool
    background: bool
    previous_response_id: str | None
    conversation_id: str | None
    metadata: dict | None
    owner: str | None = None  # a background response: the executor whose lease it must hold to be saved

    def response(self, status: str) -> dict:
        return store.response_object(
            id=self.id, created_at=self.created_at, status=status, model=self.model, params=self.params, output=[],
            previous_response_id=self.previous_response_id, conversation_id=self.conversation_id,
            background=self.background, store=self.store, metadata=self.metadata)


def _echo(body: ResponseCreateRequest) -> dict:
    params = body.model_dump(include=set(ECHOED), exclude_none=True)
    params.setdefault("temperature", 1.0)
    params.setdefault("top_p", 1.0)
    params.setdefault("tool_choice", "auto")
    params.setdefault("truncation", "disabled")
    params.setdefault("parallel_tool_calls", True)
    params.setdefault("text", {"format": body.text_format()})
    return params


def _context(session: Session, project_id: str, body: ResponseCreateRequest):
    """(items the model sees before the new input, the conversation row or None)."""
    if body.previous_response_id:
        try:
            previous = store.get(session, project_id, body.previous_response_id)
        except NotFound as exc:
            exc.param = "previous_response_id"
            raise
        return store.history(previous), None
    if body.conversation_id:
        try:
            row = conversations.get(session, project_id, body.conversation_id)
        except NotFound as exc:
            exc.param = "conversation"
            raise
        return conversations.all_items(session, row), row
    return [], None


def _prepare(rt, session: Session, project_id: str, body: ResponseCreateRequest, system: str, items: list[dict],
             extras: dict, logprobs: bool) -> chat.Prepared:
    """Render and budget the prompt; with ``truncation: auto`` the oldest items go until it fits."""
    while True:
        messages = ([{"role": "system", "content": system}] if system else []) + to_messages(items)
        request = ChatCompletionRequest(
            model=body.model, messages=messages, max_completion_tokens=body.max_output_tokens,
            temperature=body.temperature, top_p=body.top_p, logprobs=logprobs or None,
            top_logprobs=body.top_logprobs if logprobs else None, **extras)
        try:
            return chat.prepare(rt, session, request, project_id)
        except TuneforgeError as exc:
            if exc.code != "context_length_exceeded":
                exc.param = generation.response_param(exc.param)
                raise
            if body.truncation != "auto" or len(items) <= 1:
                exc.param = "input"
                raise
        items = items[1:]
        while len(items) > 1 and not (items[0].get("type") == "message" and items[0].get("role") == "user"):
            items = items[1:]  # chat templates expect the conversation to open with a user turn


def plan(rt, session: Session, project_id: str, body: ResponseCreateRequest) -> Plan:
    """Blocking (tokenizer, retrieval, database): run it in a worker thread."""
    check(body)
    context, conversation = _context(session, project_id, body)
    known = {item["id"]: item for item in context if "id" in item}

    def resolve(item_id: str) -> dict:
        item = known.get(item_id) or conversations.find_item(session, project_id, item_id)
        if item is None:
            raise NotFound(f"Item with id '{item_id}' not found.", param="input")
        return item

    input_items = normalize_input(body.input if body.input is not None else [], resolve_reference=resolve)
    result = _build(rt, session, project_id, body, context, input_items,
                    conversation.id if conversation is not None else None, new_id("resp_"), now_s())
    if result.store:
        # a background response is leased by this server from the start, and keeps its request: if this server
        # dies, another one takes it over once the lease lapsed and runs it again (``executor``)
        lease = {"worker_id": rt.background_responses.id, "request": json.dumps(
            body.model_dump(mode="json", exclude_none=True, exclude={"input"}), ensure_ascii=False),
                 "lease_expires_at": time.time() + rt.background_responses.lease_s} if result.background else {}
        if result.background:
            result.owner = rt.background_responses.id
        session.add(ResponseRow(
            id=result.id, project_id=project_id, created_at=result.created_at,
            status="queued" if result.background else "in_progress", model=body.model, stored=True,
            background=result.background, previous_response_id=body.previous_response_id,
            conversation_id=result.conversation_id, params=json.dumps(result.params, ensure_ascii=False),
            context=json.dumps(context, ensure_ascii=False), input_items=json.dumps(input_items, ensure_ascii=False),
            metadata_json=json.dumps(body.metadata, ensure_ascii=False) if body.metadata else None, **lease))
        session.commit()
    return result


def replan(rt, session: Session, row: ResponseRow, owner: str) -> Plan:
    """The plan of a stored background response, to run it again (its server died): the request it was
    created with, over the context and input items stored then (a conversation that moved on since, or a
    referenced item deleted since, does not change it). File search runs again."""
    body = ResponseCreateRequest.model_validate(json.loads(row.request))
    result = _build(rt, session, row.project_id, body, json.loads(row.context), json.loads(row.input_items),
                    row.conversation_id, row.id, row.created_at)
    result.owner = owner
    return result


def _build(rt, session: Session, project_id: str, body: ResponseCreateRequest, context: list[dict],
           input_items: list[dict], conversation_id: str | None, response_id: str, created_at: int) -> Plan:
    extras = generation.chat_extras(body)
    include = set(body.include or [])
    found = None
    tool = file_search_tool(body)
    if tool is not None and body.tool_choice != "none":
        query = last_user_text(input_items) or last_user_text(context)
        found = search_mod.run(session, project_id, tool[0], tool[1], query,
                               include_results="file_search_call.results" in include)
    system = "\n\n".join(p for p in (body.instructions, search_mod.sources_block(found.results)
                                     if found and found.results else None) if p)
    logprobs = "message.output_text.logprobs" in include
    prepared = _prepare(rt, session, project_id, body, system, context + input_items, extras, logprobs)
    return Plan(response_id, created_at, project_id, body.model, _echo(body), context, input_items, prepared,
                found, logprobs, body.store is not False, bool(body.background), body.previous_response_id,
                conversation_id, body.metadata)


def save(rt, plan: Plan, response: dict) -> None:
    """Store the finished response; a completed one joins its conversation (input, then output)."""
    if not plan.store:
        return
    with rt.db.session() as session:
        row = session.get(ResponseRow, plan.id)
        if row is None:  # deleted while it ran
            return
        if plan.owner is not None and row.worker_id != plan.owner:
            return  # another server took it over (this one stalled past its lease, or handed it over at shutdown)
        if row.control == "cancel":
            response["status"] = "cancelled"
        store.finish(row, response)
        if plan.conversation_id and response["status"] in ("completed", "incomplete"):
            conv = session.get(conversations.ConversationRow, plan.conversation_id)
            if conv is not None:
                conversations.append(session, conv, plan.input_items + response["output"])
        session.commit()


class Generation:
    """One response being generated: ``start`` (await the engine's first event, so a model that fails to
    load is still an HTTP error), then ``events`` (the stream) or ``result`` (the final object)."""

    def __init__(self, rt, plan: Plan, should_stop: Callable[[], bool] = lambda: False):
        self.rt, self.plan, self.should_stop = rt, plan, should_stop
        self.builder = EventBuilder(plan.response("in_progress"))
        self._typed = None

    async def start(self) -> Generation:
        try:
            self._typed = await chat.open_events(self.rt, self.plan.prepared)
        except BaseException:
            if self.plan.store:
                await asyncio.to_thread(self._fail, "The model failed to start generating.")
            raise
        return self

    async def result(self) -> dict:
        async with aclosing(self.events()) as events:  # closed (generation stopped) if the task is cancelled
            async for _ in events:
                pass
        return self.builder.response

    def _fail(self, message: str) -> None:
        response = self.builder.response
        response["status"] = "failed"
        response["error"] = {"code": "server_error", "message": message}
        save(self.rt, self.plan, response)

    async def events(self) -> AsyncIterator[dict]:
        plan, b = self.plan, self.builder
        saved = False
        try:
            b.response["status"] = "in_progress"
            yield b.lifecycle("created")
            yield b.lifecycle("in_progress")
            if plan.search is not None:
                for event in b.file_search(plan.search.item):
                    yield event
            output = _Output(plan, b)
            cancelled = False
            async for event in self._typed:
                for out in output.feed(event):
                    yield out
                if self.should_stop():
                    cancelled = True
                    break
            done = output.done
            reason = done.finish_reason if done else "stop"
            status = "cancelled" if cancelled else "incomplete" if reason == "length" else "completed"
            for event in output.close("completed" if status == "completed" else "incomplete"):
                yield event
            response = b.response
            response["status"] = status
            completion_tokens = done.completion_tokens if done else output.pieces
            response["usage"] = store.usage_object(plan.prepared.prompt_tokens, completion_tokens)
            response["completed_at"] = now_s()
            if status == "incomplete":
                response["incomplete_details"] = {"reason": "max_output_tokens"}
            await asyncio.to_thread(save, self.rt, plan, response)
            saved = True
            yield b.lifecycle("completed" if status == "completed" else "incomplete" if status == "incomplete"
                              else "failed")
        except Exception as exc:
            if not saved:
                await asyncio.to_thread(self._fail, str(exc) if isinstance(exc, TuneforgeError)
                                        else "The server had an error while generating.")
                saved = True
            raise
        finally:
            await self._typed.aclose()  # cancels the request in the engine if the client went away
            if not saved and plan.store:  # the client hung up mid-stream: generation stopped with it
                b.response["status"] = "cancelled"
                save(self.rt, plan, b.response)


class _Output:
    """The serving layer's typed events (text deltas, tool-call starts and argument pieces) → output items:
    at most one message and any number of ``function_call`` items, each opened, streamed and closed in
    turn (one item is open at a time, so ``output_index`` values never collide)."""

    def __init__(self, plan: Plan, builder: EventBuilder):
        self.plan, self.b = plan, builder
        self.done: ChoiceDone | None = None
        self.pieces = 0  # deltas seen: the token count if generation stopped before its finish event
        self._message: str | None = None  # the open message's id
        self._parts: list[str] = []
        self._logprobs: list[dict] = []
        self._call: dict | None = None  # the open function call
        self._calls = 0

    def feed(self, event) -> list[dict]:
        b = self.b
        if isinstance(event, TextDelta):
            if not event.text:
                return []
            self.pieces += 1
            out = [] if self._message is not None else self._close("completed") + self._open_message()
            entries = P.chat_logprobs(self.plan.prepared.info, event.logprobs) if self.plan.logprobs else None
            self._logprobs += entries or []
            self._parts.append(event.text)
            return out + [b.text_delta(event.text, entries)]
        if isinstance(event, ToolCallStart):
            out = self._close("completed")
            self._call = {"id": new_id("fc_"), "type": "function_call", "call_id": event.id, "name": event.name,
                          "arguments": "", "status": "in_progress"}
            return out + [b.function_call_start(self._call)]
        if isinstance(event, ToolCallArguments):
            self.pieces += 1
            self._call["arguments"] += event.text
            return [b.function_call_arguments(event.text)]
        if isinstance(event, ChoiceDone):
            self.done = event
        return []

    def close(self, status: str) -> list[dict]:
        """Close what is still open; an answer with neither text nor calls is an empty message."""
        out = self._close(status)
        if not self._calls and not any(i.get("type") == "message" for i in self.b.response["output"]):
            out += self._open_message() + self._close(status)
        return out

    def _open_message(self) -> list[dict]:
        self._message = new_id("msg_")
        self._parts, self._logprobs = [], []
        return self.b.message_start(self._message)

    def _close(self, status: str) -> list[dict]:
        if self._call is not None:
            call, self._call = self._call, None
            self._calls += 1
            if self.done is not None and self._calls <= len(self.done.tool_calls):
                call["arguments"] = self.done.tool_calls[self._calls - 1].arguments  # the exact generated JSON
            return self.b.function_call_done({**call, "status": status})
        if self._message is not None:
            text = "".join(self._parts)
            results = self.plan.search.results if self.plan.search else []
            item = output_message(text, status=status, annotations=search_mod.annotations(text, results),
                                  logprobs=self._logprobs if self.plan.logprobs else None, item_id=self._message)
            self._message = None
            return self.b.message_done(item)
        return []


# ---------------------------------------------------------------- the other operations


def retrieve(session: Session, project_id: str, response_id: str) -> dict:
    return store.row_object(store.get(session, project_id, response_id))


def delete(rt, session: Session, project_id: str, response_id: str) -> dict:
    row = store.get(session, project_id, response_id)
    running = row.background and row.status in ("queued", "in_progress")
    session.delete(row)
    session.commit()
    if running:  # stop generating what nobody can read any more
        rt.background_responses.cancel(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def cancel(rt, session: Session, project_id: str, response_id: str) -> dict:
    row = store.get(session, project_id, response_id)
    if not row.background:
        raise InvalidRequest("Only responses created with background=true can be cancelled.", param="response_id")
    if row.status in ("queued", "in_progress"):
        row.control, row.status, row.completed_at = "cancel", "cancelled", None
        session.commit()
        rt.background_responses.cancel(row.id)
    return store.row_object(row)


def input_items(session: Session, project_id: str, response_id: str, **page) -> dict:
    return store.input_items_page(store.get(session, project_id, response_id), **page)


def input_tokens(rt, session: Session, project_id: str, payload: dict) -> dict:
    """``POST /responses/input_tokens``: the prompt this request would have, counted (no generation, no
    file search, nothing stored)."""
    payload = {k: v for k, v in payload.items() if k not in ("personality",)}
    if not payload.get("model"):
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    body = ResponseCreateRequest.model_validate(payload)
    check(body)
    context, _ = _context(session, project_id, body)

    def resolve(item_id: str) -> dict:
        item = conversations.find_item(session, project_id, item_id)
        if item is None:
            raise NotFound(f"Item with id '{item_id}' not found.", param="input")
        return item

    items = context + normalize_input(body.input if body.input is not None else [], resolve_reference=resolve)
    extras = generation.chat_extras(body)
    prepared = _prepare(rt, session, project_id, body, body.instructions or "", items, extras, False)
    return {"object": "response.input_tokens", "input_tokens": prepared.prompt_tokens}
