"""Wire shapes of /v1/files (OpenAI's FileObject and FileDeleted)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from tuneforge.files.service import SYSTEM_PURPOSES, UPLOAD_PURPOSES  # noqa: F401 - part of the wire contract


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
