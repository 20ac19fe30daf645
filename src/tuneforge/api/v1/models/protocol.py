"""Wire shapes of /v1/models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelObject(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool


class RegisterModelRequest(BaseModel):
    """tuneforge extension: register a local Hugging Face folder or .gguf file as a base model."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The name to serve the model under")
    path: str = Field(description="A Hugging Face model folder or a .gguf file on the server's disk")
