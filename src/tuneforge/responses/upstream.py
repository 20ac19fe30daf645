"""Responses on upstream models (``TUNEFORGE_UPSTREAMS``): forwarded through the gateway, streaming
included, while the project keeps ownership — the ids the upstream creates are recorded, and later
calls about them (retrieve, delete, cancel, input items) are forwarded only for the project that owns them.

Context the upstream cannot know is sent along: a *local* ``previous_response_id`` or ``conversation``
becomes explicit input items (messages as role/content pairs), and a completed upstream response is
appended to the local conversation, as a local one would be.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.gateway import Upstream, UpstreamError
from tuneforge.responses import conversations, store
from tuneforge.responses.items import item_text, normalize_input


@dataclass
class Forward:
    body: bytes
    conversation_id: str | None = None
    input_items: list[dict] = field(default_factory=list)


def _as_input(items: list[dict]) -> list[dict]:
    """Stored items as input any OpenAI-compatible provider accepts (ids stripped: they are ours)."""
    out = []
    for item in items:
        if item.get("type") == "message":
            out.append({"role": item["role"], "content": item_text(item)})
        elif item.get("type") in ("function_call", "function_call_output"):
            out.append({k: v for k, v in item.items() if k not in ("id", "status")})
    return out


def prepare(session: Session, project_id: str, upstream: Upstream, payload: dict, raw: bytes) -> Forward:
    """The body to send: unchanged unless it refers to local context, which is then inlined."""
    previous, conv_ref = payload.get("previous_response_id"), payload.get("conversation")
    conv_id = conv_ref.get("id") if isinstance(conv_ref, dict) else conv_ref
    context: list[dict] | None = None
    conversation_id = None
    if isinstance(previous, str):
        owner = store.upstream_owner(session, project_id, previous, "response")
        if owner is not None:
            if owner != upstream.name:
                raise InvalidRequest(f"Response '{previous}' lives on the upstream '{owner}', not on the one "
                                     f"serving '{payload.get('model')}'.", param="previous_response_id")
            return Forward(raw)  # the upstream has it
        try:
            context = store.history(store.get(session, project_id, previous))
        except NotFound as exc:
            exc.param = "previous_response_id"
            raise
    elif isinstance(conv_id, str):
        row = conversations.get(session, project_id, conv_id)
        context, conversation_id = conversations.all_items(session, row), row.id
    if context is None:
        return Forward(raw)
    new_input = normalize_input(payload.get("input") if payload.get("input") is not None else [],
                                resolve_reference=lambda i: conversations.find_item(session, project_id, i)
                                or _missing(i))
    body = {k: v for k, v in payload.items() if k not in ("previous_response_id", "conversation")}
    body["input"] = _as_input(context) + _as_input(new_input)
    return Forward(json.dumps(body, ensure_ascii=False).encode(), conversation_id, new_input)


def _missing(item_id: str):
    raise NotFound(f"Item with id '{item_id}' not found.", param="input")


def adopt(db, project_id: str, upstream: Upstream, forward: Forward, response: dict) -> dict:
    """Record a response the upstream created (and add it to the local conversation it continues)."""
    if isinstance(response.get("id"), str):
        with db.session() as session:
            store.remember_upstream(session, project_id, upstream.name, "response", response["id"])
            if forward.conversation_id and response.get("status") in ("completed", "incomplete"):
                row = conversations.get(session, project_id, forward.conversation_id)
                conversations.append(session, row, forward.input_items + list(response.get("output") or []))
                session.commit()
                response["conversation"] = {"id": forward.conversation_id}
    return response


async def relay(db, project_id: str, upstream: Upstream, forward: Forward, response) -> AsyncIterator[bytes]:
    """Pass the upstream's SSE bytes through as they come, watching for the events that carry the
    response (its id on ``response.created``, its items on ``response.completed``)."""
    import asyncio

    buffer = b""
    try:
        async for part in response.aiter_raw():
            yield part
            buffer += part
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    try:
                        data = json.loads(line[5:])
                    except ValueError:
                        continue
                    if isinstance(data, dict) and data.get("type") in ("response.created", "response.completed",
                                                                        "response.incomplete"):
                        created = data["type"] == "response.created"
                        if created or forward.conversation_id:
                            target = forward if not created else Forward(forward.body)
                            await asyncio.to_thread(adopt, db, project_id, upstream, target,
                                                    dict(data.get("response") or {}))
    finally:  # also when the client hangs up: the upstream stops generating too
        await response.aclose()


def owner(gateway, session: Session, project_id: str, object_id: str, kind: str = "response") -> Upstream | None:
    name = store.upstream_owner(session, project_id, object_id, kind)
    if name is None:
        return None
    upstream = gateway.by_name(name)
    if upstream is None:
        raise UpstreamError(f"'{object_id}' lives on the upstream '{name}', which is no longer configured.")
    return upstream


def call(gateway, upstream: Upstream, method: str, path: str, params: dict | None = None) -> dict:
    return gateway.call(upstream, method, path, params=params or {})
