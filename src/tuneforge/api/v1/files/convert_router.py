"""``POST /v1/files/{id}/convert`` (tuneforge extension): HTTP translation only; logic in convert.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import AppState, get_principal, get_state
from tuneforge.api.v1.files.convert import ConvertRequest, ConvertResult, convert_uploaded_file
from tuneforge.projects import Principal

router = APIRouter(tags=["files"])


@router.post("/files/{file_id}/convert", response_model=ConvertResult,
             summary="Detect, map and convert an uploaded file to chat JSONL (tuneforge extension)")
async def convert_file(file_id: str, body: ConvertRequest | None = None, state: AppState = Depends(get_state),
                       principal: Principal = Depends(get_principal)) -> dict:
    """The shape detected, a preview of converted examples and, with ``save``, a new fine-tune file."""
    return await run_in_threadpool(convert_uploaded_file, state, principal.project_id, file_id,
                                   body or ConvertRequest())
