"""Wire shapes of /v1/vector_stores requests (objects are built by the retrieval service as dicts)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneforge.api.schemas import OpenBody


class CreateVectorStoreRequest(OpenBody):
    name: str | None = None
    description: str | None = None
    file_ids: list[str] | None = None
    expires_after: dict[str, Any] | None = None
    chunking_strategy: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class UpdateVectorStoreRequest(OpenBody):
    name: str | None = None
    expires_after: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class SearchVectorStoreRequest(OpenBody):
    query: str | list[str] = Field(description="One query, or several whose results are merged")
    max_num_results: int | None = None
    filters: dict[str, Any] | None = None
    ranking_options: dict[str, Any] | None = None
    rewrite_query: bool | None = None


class CreateVectorStoreFileRequest(OpenBody):
    file_id: str
    attributes: dict[str, Any] | None = None
    chunking_strategy: dict[str, Any] | None = None


class UpdateVectorStoreFileRequest(OpenBody):
    attributes: dict[str, Any] | None = None


class CreateFileBatchRequest(OpenBody):
    file_ids: list[str] | None = None
    files: list[dict[str, Any]] | None = Field(
        None, description="Per-file attributes/chunking: {file_id, ...}"
    )
    attributes: dict[str, Any] | None = None
    chunking_strategy: dict[str, Any] | None = None
