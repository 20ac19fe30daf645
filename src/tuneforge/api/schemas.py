"""Shared wire pieces: the error envelope (documented on every operation) and the base of request bodies
whose fields the services check themselves with OpenAI's messages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


class OpenBody(BaseModel):
    """A request body that keeps fields it does not declare: the official SDK may send parameters newer
    than this server, which the service ignores (or rejects by name) — never a schema error."""

    model_config = ConfigDict(extra="allow")

    def fields(self) -> dict[str, Any]:
        """What the client sent, as a dict (unset fields absent, so "modify" calls touch only those)."""
        return self.model_dump(exclude_unset=True)


def sent(body: OpenBody | None) -> dict[str, Any]:
    return body.fields() if body is not None else {}
