"""Wire shapes of /v1/conversations requests."""

from __future__ import annotations

from typing import Any

from tuneforge.api.schemas import OpenBody


class CreateConversationRequest(OpenBody):
    items: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None


class UpdateConversationRequest(OpenBody):
    metadata: dict[str, str] | None


class CreateItemsRequest(OpenBody):
    items: list[dict[str, Any]]
