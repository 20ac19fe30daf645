"""Compatibility layer for the original simple API (/status, /upload_files, ...).

Routes for fine-tuning, retrieval and chat arrive with their issues. Errors use OpenAI's envelope,
like the rest of the server.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from tuneforge.api.compat.envelope import ok
from tuneforge.api.deps import PrincipalDep, RuntimeDep
from tuneforge.api.multipart import parse_multipart
from tuneforge.errors import InvalidRequest
from tuneforge.files import service as files_service

router = APIRouter(tags=["compat"])


@router.get("/status")
@router.get("/common/status")
def status() -> dict:
    return ok({})


@router.post(
    "/upload_files",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                        },
                    }
                }
            },
        }
    },
)
async def upload_files(state: RuntimeDep, principal: PrincipalDep, request: Request) -> dict:
    """Store one or many files (field ``files``) with purpose ``fine-tune``."""
    form = await parse_multipart(request, state.store, max_file_bytes=state.settings.max_upload_bytes)
    try:
        uploads = [f for f in form.files if f.field in ("files", "file")]
        if not uploads:
            raise InvalidRequest("Expected one or more 'files' parts in the multipart body.", param="files")

        def _store() -> list[dict]:
            out = []
            with state.db.session() as session:
                for upload in uploads:
                    row = files_service.create_file(
                        session,
                        state.store,
                        project_id=principal.project_id,
                        writer=upload.writer,
                        filename=upload.filename,
                        purpose="fine-tune",
                    )
                    out.append(
                        {
                            "content_type": upload.content_type,
                            "filename": upload.filename,
                            "response": files_service.file_object(row),
                            "size": row.bytes,
                            "status": "uploaded",
                        }
                    )
            return out

        return ok(await run_in_threadpool(_store))
    finally:
        form.abort()
