"""Rows of the Responses and Conversations APIs (re-exported by ``tuneforge.db.models``)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tuneforge.db.models import Base, now_s


class ResponseRow(Base):
    """A response of ``/v1/responses`` generated here. ``input_items`` and ``output`` are JSON lists of
    items (with ids); ``context`` is what the model saw before this response's own input (instructions
    excluded), so ``previous_response_id`` chains need no recursion. ``control`` is "cancel" when a
    background response was asked to stop."""

    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_project_id_id", "project_id", "id"), Index("ix_responses_status", "status"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    model: Mapped[str] = mapped_column(String(512), nullable=False)
    stored: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    background: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text, nullable=False, default="{}")  # the echoed request fields
    context: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    input_items: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    output: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    usage: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    incomplete_details: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    control: Mapped[str | None] = mapped_column(String(16))
    # the server working on it holds a lease it renews (several servers may share the database)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    # a background response: its validated create request (JSON, without ``input``: ``input_items`` holds it),
    # so another server can run it again if this one dies; ``takeovers`` counts how often that happened
    request: Mapped[str | None] = mapped_column(Text)
    takeovers: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)


class ConversationItemRow(Base):
    """One item of a conversation (a message, a tool call, its output); ids sort by creation."""

    __tablename__ = "conversation_items"
    __table_args__ = (Index("ix_conversation_items_conversation_id_id", "conversation_id", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    item: Mapped[str] = mapped_column(Text, nullable=False)  # the item as on the wire, JSON


class UpstreamResponseObject(Base):
    """A response or conversation that lives on an upstream provider, created through this gateway:
    which project owns it and which upstream holds it (later calls about it are forwarded there)."""

    __tablename__ = "upstream_response_objects"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # the upstream's id
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    upstream: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # "response" | "conversation"
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
