"""Wire shape of ``GET /v1/me`` (tuneforge extension)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Me(BaseModel):
    object: Literal["tuneforge.principal"] = "tuneforge.principal"
    project: str
    project_id: str
    key_id: str | None
    auth: Literal["key", "single_user"]
