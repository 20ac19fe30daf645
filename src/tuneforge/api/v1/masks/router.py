"""/v1/masks (tuneforge extension): presets of system prompt, few-shot messages and settings."""

from __future__ import annotations

from fastapi import APIRouter

from tuneforge.api.deps import PageDep, PrincipalDep, SessionDep
from tuneforge.api.schemas import sent
from tuneforge.api.v1.masks.protocol import CreateMaskRequest, ModifyMaskRequest
from tuneforge.assistants import masks

router = APIRouter(tags=["masks (tuneforge extension)"])


@router.post("/masks")
def create_mask(session: SessionDep, principal: PrincipalDep, body: CreateMaskRequest):
    return masks.create_mask(session, principal.project_id, sent(body))


@router.get("/masks")
def list_masks(session: SessionDep, principal: PrincipalDep, page: PageDep):
    return masks.list_masks(session, principal.project_id, **page)


@router.get("/masks/{mask}")
def retrieve_mask(session: SessionDep, principal: PrincipalDep, mask: str):
    """By id (``mask_…``) or by name."""
    return masks.mask_object(masks.get_mask(session, principal.project_id, mask))


@router.post("/masks/{mask}")
def modify_mask(
    session: SessionDep, principal: PrincipalDep, mask: str, body: ModifyMaskRequest | None = None
):
    return masks.modify_mask(session, principal.project_id, mask, sent(body))


@router.delete("/masks/{mask}")
def delete_mask(session: SessionDep, principal: PrincipalDep, mask: str):
    return masks.delete_mask(session, principal.project_id, mask)
