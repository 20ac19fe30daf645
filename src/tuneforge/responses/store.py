"""Durable responses: rows ↔ wire objects, lookups that 404 across projects, input-item pages, and the
ownership records of responses and conversations that live on an upstream."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from tuneforge.db.models import ResponseRow, UpstreamResponseObject, now_s
from tuneforge.db.pagination import check_limit
from tuneforge.errors import InvalidRequest, NotFound

TERMINAL = ("completed", "failed", "incomplete", "cancelled")


def _load(text: str | None, default=None):
    return json.loads(text) if text else default


def usage_object(input_tokens: int, output_tokens: int) -> dict:
    return {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens}


def response_object(*, id: str, created_at: int, status: str, model: str, params: dict, output: list,
                    usage: dict | None = None, error: dict | None = None, incomplete_details: dict | None = None,
                    completed_at: int | None = None, previous_response_id: str | None = None,
                    conversation_id: str | None = None, background: bool = False, store: bool = True,
                    metadata: dict | None = None) -> dict:
    """Every field the SDK's ``Response`` model reads, nullable ones as null."""
    return {
        "id": id, "object": "response", "created_at": created_at, "status": status, "background": background,
        "completed_at": completed_at, "error": error, "incomplete_details": incomplete_details,
        "instructions": params.get("instructions"), "max_output_tokens": params.get("max_output_tokens"),
        "max_tool_calls": None, "model": model, "output": output,
        "parallel_tool_calls": params.get("parallel_tool_calls", True), "previous_response_id": previous_response_id,
        "conversation": {"id": conversation_id} if conversation_id else None,
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": store,
        "temperature": params.get("temperature", 1.0), "top_p": params.get("top_p", 1.0),
        "top_logprobs": params.get("top_logprobs"), "text": params.get("text") or {"format": {"type": "text"}},
        "tool_choice": params.get("tool_choice", "auto"), "tools": params.get("tools") or [],
        "truncation": params.get("truncation", "disabled"), "usage": usage, "user": params.get("user"),
        "metadata": metadata or {}, "safety_identifier": params.get("safety_identifier"),
        "prompt_cache_key": params.get("prompt_cache_key"),
    }


def row_object(row: ResponseRow) -> dict:
    return response_object(
        id=row.id, created_at=row.created_at, status=row.status, model=row.model, params=_load(row.params, {}),
        output=_load(row.output, []), usage=_load(row.usage), error=_load(row.error),
        incomplete_details=_load(row.incomplete_details), completed_at=row.completed_at,
        previous_response_id=row.previous_response_id, conversation_id=row.conversation_id,
        background=row.background, store=row.stored, metadata=_load(row.metadata_json, {}))


def get(session: Session, project_id: str, response_id: str) -> ResponseRow:
    row = session.get(ResponseRow, response_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return row


def finish(row: ResponseRow, response: dict) -> None:
    """Copy a finished (or failed) response object onto its row."""
    row.status = response["status"]
    row.output = json.dumps(response["output"], ensure_ascii=False)
    row.usage = json.dumps(response["usage"]) if response.get("usage") else None
    row.error = json.dumps(response["error"]) if response.get("error") else None
    row.incomplete_details = json.dumps(response["incomplete_details"]) if response.get("incomplete_details") else None
    row.completed_at = response.get("completed_at") or (now_s() if row.status in TERMINAL else None)


def history(row: ResponseRow) -> list[dict]:
    """What a response continuing this one (``previous_response_id``) sees before its own input."""
    return _load(row.context, []) + _load(row.input_items, []) + _load(row.output, [])


def input_items_page(row: ResponseRow, *, limit: int = 20, order: str = "desc", after: str | None = None,
                     before: str | None = None) -> dict:
    """Input items in cursor pages. Items keep their input order (referenced items keep their own ids,
    which need not sort), so the cursor is a position found by id."""
    check_limit(limit, 100)
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid 'order': must be 'asc' or 'desc'.", param="order")
    items = _load(row.input_items, [])
    if order == "desc":
        items = list(reversed(items))
    ids = [i["id"] for i in items]
    start, stop = 0, len(items)
    if after is not None:
        if after not in ids:
            raise InvalidRequest(f"Invalid 'after': no input item '{after}' in this response.", param="after")
        start = ids.index(after) + 1
    if before is not None:
        if before not in ids:
            raise InvalidRequest(f"Invalid 'before': no input item '{before}' in this response.", param="before")
        stop = ids.index(before)
        start = max(start, stop - limit) if after is None else start
    page = items[start:stop][:limit]
    has_more = start + len(page) < stop
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": has_more}


# ---------------------------------------------------------------- objects on an upstream


def remember_upstream(session: Session, project_id: str, upstream: str, kind: str, object_id: str) -> None:
    if session.get(UpstreamResponseObject, object_id) is None:
        session.add(UpstreamResponseObject(id=object_id, project_id=project_id, upstream=upstream, kind=kind))
        session.commit()


def upstream_owner(session: Session, project_id: str, object_id: str, kind: str) -> str | None:
    """The upstream's name when this project created ``object_id`` there; None for a local (or unknown) id."""
    row = session.get(UpstreamResponseObject, object_id)
    if row is None or row.project_id != project_id or row.kind != kind:
        return None
    return row.upstream


def forget_upstream(session: Session, object_id: str) -> None:
    row = session.get(UpstreamResponseObject, object_id)
    if row is not None:
        session.delete(row)
        session.commit()
