"""/v1/masks (tuneforge extension): presets of system prompt, few-shot messages and settings."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from tuneforge.api.deps import get_principal, get_session
from tuneforge.api.v1.assistants.router import page_params
from tuneforge.api.v1.vector_stores.router import json_object
from tuneforge.assistants import masks
from tuneforge.projects import Principal

router = APIRouter(tags=["masks (tuneforge extension)"])


@router.post("/masks")
def create_mask(body: dict = Depends(json_object), session: Session = Depends(get_session),
                principal: Principal = Depends(get_principal)):
    return masks.create_mask(session, principal.project_id, body)


@router.get("/masks")
def list_masks(page: dict = Depends(page_params), session: Session = Depends(get_session),
               principal: Principal = Depends(get_principal)):
    return masks.list_masks(session, principal.project_id, **page)


@router.get("/masks/{mask}")
def retrieve_mask(mask: str, session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    """By id (``mask_…``) or by name."""
    return masks.mask_object(masks.get_mask(session, principal.project_id, mask))


@router.post("/masks/{mask}")
def modify_mask(mask: str, body: dict = Depends(json_object), session: Session = Depends(get_session),
                principal: Principal = Depends(get_principal)):
    return masks.modify_mask(session, principal.project_id, mask, body)


@router.delete("/masks/{mask}")
def delete_mask(mask: str, session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return masks.delete_mask(session, principal.project_id, mask)
