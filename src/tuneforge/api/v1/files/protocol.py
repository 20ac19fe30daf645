"""Wire shapes of /v1/files (OpenAI's FileObject and FileDeleted)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Purposes only the server assigns (job results, assistant outputs).
SYSTEM_PURPOSES = ("fine-tune-results", "assistants_output", "batch_output")


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None
    expires_at: int | None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None
    last_id: str | None
    has_more: bool
