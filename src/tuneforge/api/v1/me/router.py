"""``GET /v1/me`` (tuneforge extension): who the caller is — the project of its key, or single-user mode.

The web console shows it in its header and uses it to tell whether a key is needed.
"""

from __future__ import annotations

from fastapi import APIRouter

from tuneforge.api.deps import PrincipalDep
from tuneforge.api.v1.me.protocol import Me

router = APIRouter(tags=["auth (tuneforge extension)"])


@router.get("/me", response_model=Me)
def me(principal: PrincipalDep) -> Me:
    return Me(project=principal.project_name, project_id=principal.project_id, key_id=principal.key_id,
              auth="key" if principal.key_id else "single_user")
