"""/v1/files: HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.http import attachment
from tuneforge.api.multipart import parse_multipart
from tuneforge.api.v1.files.protocol import FileDeleted, FileList, FileObject
from tuneforge.errors import InvalidRequest
from tuneforge.files import service
from tuneforge.files.check import CheckRequest, check_uploaded_file
from tuneforge.files.convert import ConvertRequest, ConvertResult, convert_uploaded_file

router = APIRouter(tags=["files"])

_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {
                            "type": "string",
                            "enum": ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"],
                        },
                        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                        "expires_after[seconds]": {"type": "integer", "minimum": 3600, "maximum": 2592000},
                    },
                }
            }
        },
    }
}


@router.post("/files", response_model=FileObject, openapi_extra=_UPLOAD_SCHEMA)
async def create_file(state: RuntimeDep, principal: PrincipalDep, request: Request) -> dict:
    form = await parse_multipart(request, state.store, max_file_bytes=state.settings.max_upload_bytes)
    try:
        purpose = service.check_purpose(form.value("purpose"))
        expires_in = service.check_expiry(
            form.value("expires_after[anchor]"), form.value("expires_after[seconds]")
        )
        files = [f for f in form.files if f.field == "file"]
        if len(files) != 1:
            raise InvalidRequest("Expected exactly one 'file' part in the multipart body.", param="file")
        upload = files[0]

        def _store() -> dict:
            with state.db.session() as session:
                row = service.create_file(
                    session,
                    state.store,
                    project_id=principal.project_id,
                    writer=upload.writer,
                    filename=upload.filename,
                    purpose=purpose,
                    expires_in=expires_in,
                )
                return service.file_object(row)

        return await run_in_threadpool(_store)
    finally:
        form.abort()  # no-op for committed blobs; removes everything else


@router.get("/files", response_model=FileList)
def list_files(
    session: SessionDep,
    principal: PrincipalDep,
    purpose: str | None = None,
    limit: int = Query(10_000),
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> dict:
    return service.list_files(
        session, principal.project_id, purpose=purpose, limit=limit, order=order, after=after
    )


@router.get("/files/{file_id}", response_model=FileObject)
def retrieve_file(session: SessionDep, principal: PrincipalDep, file_id: str) -> dict:
    return service.file_object(service.get_file(session, principal.project_id, file_id))


@router.delete("/files/{file_id}", response_model=FileDeleted)
def delete_file(state: RuntimeDep, session: SessionDep, principal: PrincipalDep, file_id: str) -> dict:
    return service.delete_file(session, state.store, principal.project_id, file_id)


@router.get(
    "/files/{file_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def file_content(
    state: RuntimeDep, session: SessionDep, principal: PrincipalDep, file_id: str
) -> StreamingResponse:
    row = service.get_file(session, principal.project_id, file_id)
    return StreamingResponse(
        state.store.open_chunks(row.blob_key),
        media_type="application/octet-stream",
        headers={"content-length": str(row.bytes), "content-disposition": attachment(row.filename)},
    )


@router.post(
    "/files/{file_id}/check",
    summary="Check a training file (tuneforge extension)",
    responses={200: {"description": "The data toolkit's JSON report"}},
)
async def check_file(
    state: RuntimeDep, principal: PrincipalDep, file_id: str, body: CheckRequest | None = None
) -> dict:
    """Format checks, token statistics and epoch/cost estimates for an uploaded JSONL file."""
    return await run_in_threadpool(
        check_uploaded_file, state, principal.project_id, file_id, body or CheckRequest()
    )


@router.post(
    "/files/{file_id}/convert",
    response_model=ConvertResult,
    summary="Detect, map and convert an uploaded file to chat JSONL (tuneforge extension)",
)
async def convert_file(state: RuntimeDep, principal: PrincipalDep, file_id: str, body: ConvertRequest | None = None):
    """The shape detected, a preview of converted examples and, with ``save``, a new fine-tune file."""
    return await run_in_threadpool(
        convert_uploaded_file, state, principal.project_id, file_id, body or ConvertRequest()
    )
