"""Wire shapes of /v1/batches."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tuneforge.api.schemas import OpenBody


class CreateBatchRequest(OpenBody):
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any] | None = None


class BatchObject(BaseModel):
    id: str
    object: str
    endpoint: str
    model: str | None = None
    errors: dict[str, Any] | None = None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: dict[str, int]
    usage: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class BatchList(BaseModel):
    object: str
    data: list[BatchObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool
