"""OpenAI cursor pagination: {"object":"list","data":[...],"first_id","last_id","has_more"}.

Ids sort by creation time (see ``tuneforge.ids``), so ``after`` is a plain id comparison and the
SDK's auto-pagination (``after=<last id>`` until ``has_more`` is false) always terminates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import Select
from sqlalchemy.orm import Session

from tuneforge.errors import InvalidRequest

Order = Literal["asc", "desc"]


def check_limit(limit: int, maximum: int) -> int:
    if limit < 1 or limit > maximum:
        raise InvalidRequest(f"Invalid 'limit': must be between 1 and {maximum}, got {limit}.", param="limit")
    return limit


def paginate(session: Session, stmt: Select, id_column, *, limit: int, order: Order = "desc",
             after: str | None = None, before: str | None = None,
             serialize: Callable[[Any], dict]) -> dict:
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid 'order': must be 'asc' or 'desc'.", param="order")
    if after:
        stmt = stmt.where(id_column < after if order == "desc" else id_column > after)
    # ``before`` pages backwards: take the `limit` items nearest the cursor, then restore the order.
    backwards = bool(before) and not after
    if before:
        stmt = stmt.where(id_column > before if order == "desc" else id_column < before)
    descending = (order == "desc") != backwards
    stmt = stmt.order_by(id_column.desc() if descending else id_column.asc()).limit(limit + 1)
    rows = list(session.scalars(stmt).all())
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    data = [serialize(r) for r in rows]
    return list_object(data, has_more=has_more)


def list_object(data: list[dict], *, has_more: bool = False) -> dict:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
