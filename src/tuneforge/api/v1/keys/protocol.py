"""Wire shapes of ``/v1/keys`` (tuneforge extension): the API keys of the caller's project."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=128, description="A label to tell keys apart")


class ApiKeyObject(BaseModel):
    object: Literal["api_key"] = "api_key"
    id: str
    name: str | None
    prefix: str = Field(description="The first characters of the key, kept in clear")
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


class CreatedApiKey(ApiKeyObject):
    key: str = Field(description="The key itself: shown in this answer only")


class ApiKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApiKeyObject]
