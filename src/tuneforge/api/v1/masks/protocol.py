"""Wire shapes of /v1/masks (tuneforge extension, NextChat-style presets)."""

from __future__ import annotations

from typing import Any

from tuneforge.api.schemas import OpenBody


class _MaskFields(OpenBody):
    description: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    settings: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class CreateMaskRequest(_MaskFields):
    name: str


class ModifyMaskRequest(_MaskFields):
    name: str | None = None
