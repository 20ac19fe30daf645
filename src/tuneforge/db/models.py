"""SQLAlchemy 2 models. Timestamps are Unix seconds (ints), as on OpenAI's wire."""

from __future__ import annotations

import time

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
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


class FineTuningJobRow(Base):
    """A fine-tuning job: the API's view (OpenAI fields) plus the queue's bookkeeping.

    JSON-valued fields are stored as text so SQLite and PostgreSQL behave the same. The queue
    fields (``worker_id``, ``lease_expires_at``, ``control``) are what makes a job survive a killed
    worker: a claim is an UPDATE guarded by the status, and an expired lease puts the job back.
    """

    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (Index("ix_fine_tuning_jobs_project_status", "project_id", "status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    model: Mapped[str] = mapped_column(String(512), nullable=False)  # as requested (base or ft:)
    base_model: Mapped[str] = mapped_column(String(256), nullable=False)
    parent_model: Mapped[str | None] = mapped_column(String(512))  # the ft: model continued from
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    training_file: Mapped[str] = mapped_column(String(64), nullable=False)
    validation_file: Mapped[str | None] = mapped_column(String(64))
    suffix: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    method_type: Mapped[str] = mapped_column(String(16), nullable=False, default="supervised")
    hyperparameters: Mapped[str] = mapped_column(Text, nullable=False)  # requested, JSON
    resolved: Mapped[str | None] = mapped_column(Text)  # resolved hyperparameters, JSON
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    integrations: Mapped[str | None] = mapped_column(Text)
    # tuneforge extension: score every checkpoint on the validation file (JSON {graders, max_items,
    # sampling_params, eval_id}); the offline runner does it, see evals.checkpoint_scoring
    validation_eval: Mapped[str | None] = mapped_column(Text)
    # tuneforge extension: data-parallel training workers (JSON {num_workers, cpus_per_worker}); a job
    # with num_workers > 1 trains through Ray Train (training.ray_train), see training.jobs
    distributed: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)  # {code, message, param}, JSON
    fine_tuned_model: Mapped[str | None] = mapped_column(String(512))
    result_files: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    estimated_finish: Mapped[int | None] = mapped_column(BigInteger)
    step: Mapped[int | None] = mapped_column(Integer)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    # queue
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    control: Mapped[str | None] = mapped_column(String(16))  # "cancel" | "pause" requested by the API
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)


class FineTuningEventRow(Base):
    """A job event. ``seq`` orders the live stream; ``dedup_key`` makes a resumed job's replayed
    steps write nothing twice."""

    __tablename__ = "fine_tuning_events"
    __table_args__ = (UniqueConstraint("job_id", "dedup_key", name="uq_fine_tuning_events_dedup"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id"), nullable=False, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    level: Mapped[str] = mapped_column(String(8), nullable=False, default="info")
    type: Mapped[str] = mapped_column(String(16), nullable=False, default="message")
    message: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str | None] = mapped_column(String(128))


class FineTuningCheckpointRow(Base):
    __tablename__ = "fine_tuning_checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step_number", name="uq_fine_tuning_checkpoints_step"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id"), nullable=False, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    step_number: Mapped[int] = mapped_column(Integer, nullable=False)
    epoch: Mapped[int] = mapped_column(Integer, nullable=False)
    metrics: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    fine_tuned_model_checkpoint: Mapped[str] = mapped_column(String(512), nullable=False)
    adapter_dir: Mapped[str] = mapped_column(Text, nullable=False)
    # scoring with the job's validation_eval: NULL (none yet) -> running -> completed | failed
    scoring_status: Mapped[str | None] = mapped_column(String(16))
    eval_run_id: Mapped[str | None] = mapped_column(String(64))


# ---------------------------------------------------------------- retrieval + assistants (issue #6)
# JSON-valued columns are text (as above) so SQLite and PostgreSQL behave the same.


class VectorStoreRow(Base):
    """A vector store. File counts, usage and status are derived from its files when serialized;
    ``revision`` goes up whenever its chunks change, so in-memory search indexes know they are stale."""

    __tablename__ = "vector_stores"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(256), nullable=False, default="")
    description: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    last_active_at: Mapped[int | None] = mapped_column(BigInteger)
    expires_after_days: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class VectorStoreFileRow(Base):
    """A file attached to a vector store. Its id is the File's id, as on OpenAI's wire."""

    __tablename__ = "vector_store_files"
    __table_args__ = (Index("ix_vector_store_files_status", "status"),)

    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id", ondelete="CASCADE"),
                                                 primary_key=True)
    file_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    filename: Mapped[str] = mapped_column(String(512), nullable=False, default="")  # kept for citations
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="in_progress")
    usage_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    chunking_strategy: Mapped[str] = mapped_column(Text, nullable=False)
    attributes: Mapped[str | None] = mapped_column(Text)
    # the server ingesting it holds a lease it renews (several servers may share the database)
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)


class VectorStoreFileBatchRow(Base):
    __tablename__ = "vector_store_file_batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id", ondelete="CASCADE"),
                                                 nullable=False, index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger)


class VectorStoreChunkRow(Base):
    """One searchable chunk: its text, keyword terms (jieba/English tokens, space-joined, computed
    once at ingestion) and its embedding (float32 bytes), so a restart neither re-embeds nor re-segments."""

    __tablename__ = "vector_store_chunks"
    __table_args__ = (Index("ix_vector_store_chunks_store_file", "vector_store_id", "file_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id", ondelete="CASCADE"),
                                                 nullable=False)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    file_id: Mapped[str] = mapped_column(String(64), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    terms: Mapped[str] = mapped_column(Text, nullable=False)
    meta: Mapped[str | None] = mapped_column(Text)  # {"heading", "page", "kind"}
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class AssistantRow(Base):
    __tablename__ = "assistants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    name: Mapped[str | None] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(512), nullable=False)
    instructions: Mapped[str | None] = mapped_column(Text)
    tools: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    tool_resources: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    temperature: Mapped[float | None] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    response_format: Mapped[str | None] = mapped_column(Text)


class ThreadRow(Base):
    """A conversation. ``summary`` condenses the messages up to ``summary_upto`` (a message id) so
    long threads fit the model's context: newer turns go in verbatim."""

    __tablename__ = "threads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    tool_resources: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    summary_upto: Mapped[str | None] = mapped_column(String(64))


class MessageRow(Base):
    __tablename__ = "thread_messages"
    __table_args__ = (Index("ix_thread_messages_thread_id_id", "thread_id", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)  # OpenAI content blocks, JSON
    assistant_id: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    attachments: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="completed")
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    incomplete_at: Mapped[int | None] = mapped_column(BigInteger)
    incomplete_details: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)


class RunRow(Base):
    """A run. ``control`` is set to "cancel" by the API; the executor notices it between steps."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_thread_id_id", "thread_id", "id"), Index("ix_runs_status", "status"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    assistant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    model: Mapped[str] = mapped_column(String(512), nullable=False)
    instructions: Mapped[str | None] = mapped_column(Text)
    additional_instructions: Mapped[str | None] = mapped_column(Text)
    tools: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    mask_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    incomplete_details: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float | None] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    max_prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    max_completion_tokens: Mapped[int | None] = mapped_column(Integer)
    truncation_strategy: Mapped[str | None] = mapped_column(Text)
    tool_choice: Mapped[str | None] = mapped_column(Text)
    parallel_tool_calls: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    response_format: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)
    control: Mapped[str | None] = mapped_column(String(16))
    # The server running it renews this lease; another server fails the run only once the lease lapsed.
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    # JSON ``{"type": "submit_tool_outputs", ...}`` while the run waits for function results (requires_action)
    required_action: Mapped[str | None] = mapped_column(Text)
    # how often another server took the run over (its server stopped mid-run) and ran it again
    takeovers: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class RunStepRow(Base):
    __tablename__ = "run_steps"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True)
    thread_id: Mapped[str] = mapped_column(String(64), nullable=False)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    assistant_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    step_details: Mapped[str] = mapped_column(Text, nullable=False)
    cancelled_at: Mapped[int | None] = mapped_column(BigInteger)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    expired_at: Mapped[int | None] = mapped_column(BigInteger)
    failed_at: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    usage: Mapped[str | None] = mapped_column(Text)


class MaskRow(Base):
    """A preset ("mask" in chat front ends): system prompt + few-shot messages + model settings."""

    __tablename__ = "masks"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_masks_project_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)
    model: Mapped[str | None] = mapped_column(String(512))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    messages: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    settings: Mapped[str] = mapped_column(Text, nullable=False, default="{}")  # temperature, top_p, max_tokens
    metadata_json: Mapped[str | None] = mapped_column("metadata", Text)


class UpstreamFineTuningJob(Base):
    """A fine-tuning job created on an upstream provider through this gateway: which project owns it
    and which upstream holds it, so later calls about it are forwarded there (and only for its owner)."""

    __tablename__ = "upstream_fine_tuning_jobs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)  # the upstream's job id
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), nullable=False, index=True)
    upstream: Mapped[str] = mapped_column(String(128), nullable=False)
    model: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_s, nullable=False)


# The Responses/Conversations and evals/batches tables live in their own modules (this file stays readable);
# importing them here registers them on ``Base.metadata`` and keeps ``from tuneforge.db.models import X`` working.
from tuneforge.db.models_evals import BatchRequestRow, BatchRow, EvalItemRow, EvalRow, EvalRunRow  # noqa: E402, F401
from tuneforge.db.models_responses import (  # noqa: E402, F401
    ConversationItemRow,
    ConversationRow,
    ResponseRow,
    UpstreamResponseObject,
)
