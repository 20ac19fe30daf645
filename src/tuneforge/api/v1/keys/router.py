"""``/v1/keys`` (tuneforge extension): list, create and revoke the API keys of the caller's project.

Keys are stored as hashes; a new key's plaintext appears once, in the create answer. Another project's
keys are "not found". In single-user mode the first key created turns authentication on.
"""

from __future__ import annotations

from fastapi import APIRouter

from tuneforge.api.deps import PrincipalDep, SessionDep
from tuneforge.api.v1.keys.protocol import ApiKeyList, ApiKeyObject, CreatedApiKey, CreateKeyRequest
from tuneforge.projects import create_project_key, project_keys, revoke_project_key

router = APIRouter(tags=["keys (tuneforge extension)"])


@router.get("/keys", response_model=ApiKeyList)
def list_keys(session: SessionDep, principal: PrincipalDep) -> dict:
    return {"object": "list", "data": project_keys(session, principal.project_id)}


@router.post("/keys", response_model=CreatedApiKey)
def create_key(session: SessionDep, principal: PrincipalDep, body: CreateKeyRequest | None = None) -> dict:
    return create_project_key(session, principal.project_id, body.name if body else None)


@router.delete("/keys/{key_id}", response_model=ApiKeyObject)
def revoke_key(session: SessionDep, principal: PrincipalDep, key_id: str) -> dict:
    return revoke_project_key(session, principal.project_id, key_id)
