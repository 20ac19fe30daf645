"""Request-scoped dependencies: the app's shared state, a DB session, the calling project."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tuneforge.db.session import Database
from tuneforge.projects import Principal, authenticate
from tuneforge.registry import ModelRegistry
from tuneforge.settings import Settings
from tuneforge.storage import BlobStore


@dataclass
class AppState:
    """Everything the lifespan owns.

    Subsystems started lazily or by later features (inference engine, training worker) keep their
    handles in ``extras`` and register async shutdown callables with ``add_closer``.
    """

    settings: Settings
    db: Database
    store: BlobStore
    registry: ModelRegistry
    started_at: float
    extras: dict[str, Any] = field(default_factory=dict)


    def add_closer(self, closer) -> None:
        """``closer`` is an ``async def`` called at shutdown, last added first."""
        self.extras.setdefault("closers", []).append(closer)


def get_state(request: Request) -> AppState:
    return request.app.state.tuneforge


def get_session(state: AppState = Depends(get_state)) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def get_principal(request: Request, state: AppState = Depends(get_state)) -> Principal:
    token = bearer_token(request)
    with state.db.session() as session:
        return authenticate(session, token)
