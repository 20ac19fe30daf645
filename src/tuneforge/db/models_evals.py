"""Rows of evals, eval runs and batches (re-exported by ``tuneforge.db.models``)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tuneforge.db.models import Base, now_s


class EvalRow(Base):
    """An eval: what an item looks like (``data_source_config``) and how to grade it (``testing_criteria``)."""

    __tablename__ = "evals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    data_source_config: Mapped[str] = mapped_column(Text, nullable=False)  # JSON
    testing_criteria: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of graders
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)


class EvalRunRow(Base):
    """A run of an eval. Its items are materialised at creation (``EvalItemRow``), so a restarted runner
    resumes with the pending ones only."""

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_eval_id_id", "eval_id", "id"), Index("ix_eval_runs_status", "status"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    eval_id: Mapped[str] = mapped_column(ForeignKey("evals.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(512), nullable=False)
    model: Mapped[str] = mapped_column(String(512), nullable=False)
    data_source: Mapped[str] = mapped_column(Text, nullable=False)  # JSON, as sent
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # queued|in_progress|completed|failed|canceled
    error: Mapped[str | None] = mapped_column(Text)  # JSON {code, message}
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    # the server working on it holds a lease it renews (several servers may share the database)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)


class EvalItemRow(Base):
    """One data-source item of a run and, once done, its sample and per-criterion results."""

    __tablename__ = "eval_run_items"
    __table_args__ = (Index("ix_eval_run_items_run_id_status", "run_id", "status"),
                      UniqueConstraint("run_id", "item_index", name="uq_eval_run_items_run_index"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), nullable=False)
    item_index: Mapped[int] = mapped_column(Integer, nullable=False)
    item: Mapped[str] = mapped_column(Text, nullable=False)  # JSON
    given_sample: Mapped[str | None] = mapped_column(Text)  # JSON, a sample that came with the item
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")  # pending|pass|fail|error
    sample: Mapped[str | None] = mapped_column(Text)  # JSON, the output item's sample
    results: Mapped[str | None] = mapped_column(Text)  # JSON list of {name, type, score, passed}
    usage: Mapped[str | None] = mapped_column(Text)  # JSON {model: {prompt_tokens, ...}} incl. judges
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)


class BatchRow(Base):
    """A Batch API batch; its request lines are ``BatchRequestRow``s (output files are written at the end)."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_status", "status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    endpoint: Mapped[str] = mapped_column(String(64), nullable=False)
    input_file_id: Mapped[str] = mapped_column(String(64), nullable=False)
    completion_window: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    output_file_id: Mapped[str | None] = mapped_column(String(64))
    error_file_id: Mapped[str | None] = mapped_column(String(64))
    errors: Mapped[str | None] = mapped_column(Text)  # JSON list of {code, message, line, param}
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    model: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    in_progress_at: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    finalizing_at: Mapped[int | None] = mapped_column(BigInteger)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
    cancelling_at: Mapped[int | None] = mapped_column(BigInteger)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger)
    # the server working on it holds a lease it renews (several servers may share the database)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)


class BatchRequestRow(Base):
    """One line of a batch's input file: pending, then its response (or error) as the output line."""

    __tablename__ = "batch_requests"
    __table_args__ = (Index("ix_batch_requests_batch_id_status", "batch_id", "status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"), nullable=False)
    line: Mapped[int] = mapped_column(Integer, nullable=False)
    custom_id: Mapped[str | None] = mapped_column(String(512))
    body: Mapped[str | None] = mapped_column(Text)  # JSON request body (None for a line that failed to parse)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending|completed|failed
    output: Mapped[str | None] = mapped_column(Text)  # JSON: the whole output/error file line
    prompt_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
