"""Conversations: durable, per-project lists of items. A response created with ``conversation`` reads
its items as context and appends its own input and output items to it."""

from __future__ import annotations

import json

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tuneforge.db.models import ConversationItemRow, ConversationRow
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import InvalidRequest, NotFound
from tuneforge.ids import new_id
from tuneforge.responses.items import normalize_item

MAX_ITEMS_PER_CALL = 20


def conversation_object(row: ConversationRow) -> dict:
    return {"id": row.id, "object": "conversation", "created_at": row.created_at,
            "metadata": json.loads(row.metadata_json) if row.metadata_json else {}}


def _metadata(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16 or any(
            not isinstance(v, str) or len(k) > 64 or len(v) > 512 for k, v in value.items()):
        raise InvalidRequest("Invalid 'metadata': at most 16 string pairs, keys up to 64 and values up to 512 "
                             "characters.", param="metadata")
    return json.dumps(value, ensure_ascii=False)


def get(session: Session, project_id: str, conversation_id: str) -> ConversationRow:
    row = session.get(ConversationRow, conversation_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"Conversation with id '{conversation_id}' not found.", param="conversation_id")
    return row


def _new_items(items, where: str = "items") -> list[dict]:
    if not isinstance(items, list):
        raise InvalidRequest(f"Invalid '{where}': expected an array of items.", param=where)
    if len(items) > MAX_ITEMS_PER_CALL:
        raise InvalidRequest(f"Invalid '{where}': at most {MAX_ITEMS_PER_CALL} items per call, got {len(items)}.",
                             param=where)
    out = []
    for i, item in enumerate(items):
        normalized = normalize_item(item, f"{where}[{i}]")
        normalized.pop("id", None)  # ids are the conversation's own, in order
        out.append(normalized)
    return out


def append(session: Session, row: ConversationRow, items: list[dict]) -> list[dict]:
    """Add items in order (each gets a fresh, increasing id); returns them as stored."""
    stored = []
    for item in items:
        item = dict(item)
        item["id"] = new_id("msg_" if item.get("type") == "message" else "ci_")
        session.add(ConversationItemRow(id=item["id"], conversation_id=row.id, project_id=row.project_id,
                                        item=json.dumps(item, ensure_ascii=False)))
        stored.append(item)
    return stored


def all_items(session: Session, row: ConversationRow) -> list[dict]:
    rows = session.scalars(select(ConversationItemRow).where(ConversationItemRow.conversation_id == row.id)
                           .order_by(ConversationItemRow.id))
    return [json.loads(r.item) for r in rows]


def create(session: Session, project_id: str, body: dict) -> dict:
    items = _new_items(body.get("items") or [])
    row = ConversationRow(id=new_id("conv_"), project_id=project_id, metadata_json=_metadata(body.get("metadata")))
    session.add(row)
    session.flush()
    append(session, row, items)
    session.commit()
    return conversation_object(row)


def update(session: Session, project_id: str, conversation_id: str, body: dict) -> dict:
    row = get(session, project_id, conversation_id)
    if "metadata" not in body:
        raise InvalidRequest("Missing required parameter: 'metadata'.", param="metadata",
                             code="missing_required_parameter")
    row.metadata_json = _metadata(body["metadata"])
    session.commit()
    return conversation_object(row)


def remove(session: Session, project_id: str, conversation_id: str) -> dict:
    row = get(session, project_id, conversation_id)
    session.execute(delete(ConversationItemRow).where(ConversationItemRow.conversation_id == row.id))
    session.delete(row)
    session.commit()
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


def create_items(session: Session, project_id: str, conversation_id: str, body: dict) -> dict:
    row = get(session, project_id, conversation_id)
    if "items" not in body:
        raise InvalidRequest("Missing required parameter: 'items'.", param="items", code="missing_required_parameter")
    stored = append(session, row, _new_items(body["items"]))
    session.commit()
    return {"object": "list", "data": stored, "first_id": stored[0]["id"] if stored else None,
            "last_id": stored[-1]["id"] if stored else None, "has_more": False}


def list_items(session: Session, project_id: str, conversation_id: str, *, limit: int, order: str,
               after: str | None, before: str | None = None) -> dict:
    row = get(session, project_id, conversation_id)
    stmt = select(ConversationItemRow).where(ConversationItemRow.conversation_id == row.id)
    return paginate(session, stmt, ConversationItemRow.id, limit=check_limit(limit, 100), order=order, after=after,
                    before=before, serialize=lambda r: json.loads(r.item))


def get_item(session: Session, project_id: str, conversation_id: str, item_id: str) -> ConversationItemRow:
    get(session, project_id, conversation_id)
    item = session.get(ConversationItemRow, item_id)
    if item is None or item.conversation_id != conversation_id:
        raise NotFound(f"Item with id '{item_id}' not found.", param="item_id")
    return item


def retrieve_item(session: Session, project_id: str, conversation_id: str, item_id: str) -> dict:
    return json.loads(get_item(session, project_id, conversation_id, item_id).item)


def delete_item(session: Session, project_id: str, conversation_id: str, item_id: str) -> dict:
    item = get_item(session, project_id, conversation_id, item_id)
    session.delete(item)
    session.commit()
    return conversation_object(get(session, project_id, conversation_id))


def find_item(session: Session, project_id: str, item_id: str) -> dict | None:
    """A conversation item of this project by id (for ``item_reference``)."""
    item = session.get(ConversationItemRow, item_id)
    if item is None or item.project_id != project_id:
        return None
    return json.loads(item.item)
