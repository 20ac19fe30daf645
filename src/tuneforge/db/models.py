"""SQLAlchemy 2 models. Timestamps are Unix seconds (ints), as on OpenAI's wire."""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now_s() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    pass


class Project(Base):
    """A tenant: every file, job and fine-tuned model belongs to one."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    # Only a short prefix is kept in clear, to let people tell their keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)


class FileRecord(Base):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_purpose", "project_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    filename: Mapped[str] = mapped_column(String(512), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    blob_key: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="processed")
    status_details: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)


class BaseModelEntry(Base):
    """A base model registered by path (`tuneforge models add NAME PATH`)."""

    __tablename__ = "base_models"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    # "hf" for a Hugging Face folder, "gguf" for a single .gguf file
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    registered_by: Mapped[str | None] = mapped_column(ForeignKey("projects.id"))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    context_length: Mapped[int | None] = mapped_column(Integer)


class FineTunedModel(Base):
    """A servable LoRA adapter: a job's final model or one of its checkpoints.

    ``id`` is the OpenAI-style model name (``ft:<base>:<project>:<suffix>:<jobid>[:ckpt-step-N]``);
    ``adapter_dir`` is relative to the data dir and holds adapter weights, the resolved training config
    and the chat template used in training.
    """

    __tablename__ = "fine_tuned_models"

    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    base_model: Mapped[str] = mapped_column(String(256), nullable=False)
    adapter_dir: Mapped[str] = mapped_column(Text, nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    step: Mapped[int | None] = mapped_column(Integer)  # None for a job's final model
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
