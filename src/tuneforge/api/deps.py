"""Request-scoped dependencies, as ``Annotated`` aliases routers use in their signatures:
``rt: RuntimeDep`` (the app's typed runtime), ``session: SessionDep`` (a DB session for the request),
``principal: PrincipalDep`` (the calling project, from the bearer key)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from tuneforge.projects import Principal, authenticate
from tuneforge.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.tuneforge


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    with rt.db.session() as session:
        yield session


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def get_principal(rt: RuntimeDep, request: Request) -> Principal:
    token = bearer_token(request)
    with rt.db.session() as session:
        return authenticate(session, token)


# scope="function": the session commits when the route function returns, *before* the response is sent,
# so a client's next request always sees what this one wrote (with the default request scope the commit
# ran after the response and a quick follow-up request could get a 404 for the object it just created).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def page_params(
    limit: int = Query(20),
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    before: str | None = None,
) -> dict:
    """OpenAI's cursor pagination parameters (checked by ``db.pagination``)."""
    return {"limit": limit, "order": order, "after": after, "before": before}


PageDep = Annotated[dict, Depends(page_params)]
