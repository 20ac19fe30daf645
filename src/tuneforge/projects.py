"""Projects (tenants) and their API keys. Keys are stored as SHA-256 hashes only.

The keys are 32 random bytes, so a fast hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.db.models import ApiKey, Project, now_s
from tuneforge.errors import AuthenticationFailed, InvalidRequest, NotFound
from tuneforge.ids import new_id

DEFAULT_PROJECT = "default"
KEY_PREFIX = "tf-"


@dataclass(frozen=True)
class Principal:
    project_id: str
    project_name: str
    key_id: str | None  # None when the server runs without keys


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def valid_project_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidRequest(
            "Project names are 1-64 characters of letters, digits, '-', '_' or '.'.", param="project"
        )
    return name


def get_or_create_project(session: Session, name: str) -> Project:
    name = valid_project_name(name)
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(id=new_id("proj_"), name=name)
        session.add(project)
        session.flush()
    return project


def create_key(session: Session, project_name: str, key_name: str | None = None) -> tuple[str, ApiKey]:
    """Returns the plaintext key (shown once) and its stored row."""
    project = get_or_create_project(session, project_name)
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(id=new_id("key_"), project_id=project.id, name=key_name, prefix=plaintext[:10],
                 key_hash=hash_key(plaintext))
    session.add(row)
    session.flush()
    return plaintext, row


def list_keys(session: Session, project_name: str | None = None) -> list[tuple[ApiKey, Project]]:
    stmt = select(ApiKey, Project).join(Project, ApiKey.project_id == Project.id).order_by(ApiKey.id)
    if project_name:
        stmt = stmt.where(Project.name == project_name)
    return [(k, p) for k, p in session.execute(stmt).all()]


def revoke_key(session: Session, key_id_or_prefix: str) -> ApiKey:
    rows = session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))).all()
    matches = [r for r in rows if r.id == key_id_or_prefix or r.prefix == key_id_or_prefix]
    if not matches:
        raise NotFound(f"No active API key '{key_id_or_prefix}'.")
    if len(matches) > 1:
        raise InvalidRequest(f"'{key_id_or_prefix}' matches several keys; use the key id.")
    matches[0].revoked_at = now_s()
    return matches[0]


def any_keys(session: Session) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)) is not None


def authenticate(session: Session, token: str | None) -> Principal:
    """Resolve a bearer token to a project.

    With no active keys at all the server is in open (single-user) mode: any key, or none, maps
    to the default project. Once a key exists, every request needs a valid one.
    """
    if not any_keys(session):
        project = get_or_create_project(session, DEFAULT_PROJECT)
        return Principal(project.id, project.name, None)
    if not token:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.", code=None
        )
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token)))
    if row is None or row.revoked_at is not None:
        shown = token[:6] + "*" * 4 + token[-4:] if len(token) > 12 else "*" * len(token)
        raise AuthenticationFailed(f"Incorrect API key provided: {shown}.")
    now = now_s()
    if row.last_used_at is None or now - row.last_used_at > 60:  # avoid a write per request
        row.last_used_at = now
    project = session.get(Project, row.project_id)
    return Principal(project.id, project.name, row.id)


# -- keys of one project (the API: a key holder manages its own project's keys) ------------------------

def key_object(row: ApiKey) -> dict:
    return {"object": "api_key", "id": row.id, "name": row.name, "prefix": row.prefix,
            "created_at": row.created_at, "last_used_at": row.last_used_at, "revoked_at": row.revoked_at}


def project_keys(session: Session, project_id: str) -> list[dict]:
    rows = session.scalars(select(ApiKey).where(ApiKey.project_id == project_id).order_by(ApiKey.id)).all()
    return [key_object(r) for r in rows]


def create_project_key(session: Session, project_id: str, key_name: str | None = None) -> dict:
    """A new key of this project; the plaintext ``key`` is in this answer only. The first key of a server
    in single-user mode turns authentication on for every request."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"No project '{project_id}'.")
    plaintext, row = create_key(session, project.name, key_name)
    return {**key_object(row), "key": plaintext}


def revoke_project_key(session: Session, project_id: str, key_id: str) -> dict:
    row = session.get(ApiKey, key_id)
    if row is None or row.project_id != project_id:  # another project's key is "not found"
        raise NotFound(f"No API key '{key_id}'.")
    if row.revoked_at is None:
        row.revoked_at = now_s()
    return key_object(row)
