"""``GET /v1/me`` (tuneforge extension): who the caller is — the project of its key, or single-user mode.

The web console shows it in its header and uses it to tell whether a key is needed.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from tuneforge.api.deps import get_principal
from tuneforge.projects import Principal

router = APIRouter(tags=["auth (tuneforge extension)"])


class Me(BaseModel):
    object: Literal["tuneforge.principal"] = "tuneforge.principal"
    project: str
    project_id: str
    key_id: str | None
    auth: Literal["key", "single_user"]


@router.get("/me", response_model=Me)
def me(principal: Principal = Depends(get_principal)) -> Me:
    return Me(project=principal.project_name, project_id=principal.project_id, key_id=principal.key_id,
              auth="key" if principal.key_id else "single_user")
