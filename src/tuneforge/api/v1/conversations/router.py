"""/v1/conversations and their items: HTTP translation only (the logic is in tuneforge.responses)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from tuneforge.api.deps import PrincipalDep, SessionDep
from tuneforge.api.schemas import sent
from tuneforge.api.v1.conversations.protocol import (
    CreateConversationRequest,
    CreateItemsRequest,
    UpdateConversationRequest,
)
from tuneforge.responses import conversations as service

router = APIRouter(tags=["conversations"])
Include = Query(None, alias="include[]")  # accepted: items carry everything already


@router.post("/conversations")
def create_conversation(session: SessionDep, principal: PrincipalDep, body: CreateConversationRequest | None = None):
    return service.create(session, principal.project_id, sent(body))


@router.get("/conversations/{conversation_id}")
def retrieve_conversation(session: SessionDep, principal: PrincipalDep, conversation_id: str):
    return service.conversation_object(service.get(session, principal.project_id, conversation_id))


@router.post("/conversations/{conversation_id}")
def update_conversation(session: SessionDep, principal: PrincipalDep, conversation_id: str,
                        body: UpdateConversationRequest):
    return service.update(session, principal.project_id, conversation_id, sent(body))


@router.delete("/conversations/{conversation_id}")
def delete_conversation(session: SessionDep, principal: PrincipalDep, conversation_id: str):
    return service.remove(session, principal.project_id, conversation_id)


@router.post("/conversations/{conversation_id}/items")
def create_items(session: SessionDep, principal: PrincipalDep, conversation_id: str, body: CreateItemsRequest,
                 include: list[str] | None = Include):
    return service.create_items(session, principal.project_id, conversation_id, sent(body))


@router.get("/conversations/{conversation_id}/items")
def list_items(session: SessionDep, principal: PrincipalDep, conversation_id: str, limit: int = 20,
               order: str = "desc", after: str | None = None, include: list[str] | None = Include):
    return service.list_items(session, principal.project_id, conversation_id, limit=limit, order=order, after=after)


@router.get("/conversations/{conversation_id}/items/{item_id}")
def retrieve_item(session: SessionDep, principal: PrincipalDep, conversation_id: str, item_id: str,
                  include: list[str] | None = Include):
    return service.retrieve_item(session, principal.project_id, conversation_id, item_id)


@router.delete("/conversations/{conversation_id}/items/{item_id}")
def delete_item(session: SessionDep, principal: PrincipalDep, conversation_id: str, item_id: str):
    return service.delete_item(session, principal.project_id, conversation_id, item_id)
