"""Wire shapes of /v1/fine_tuning (OpenAI's FineTuningJob, events and checkpoints)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: Auto | int | None = None
    learning_rate_multiplier: Auto | float | None = None
    n_epochs: Auto | int | None = None
    beta: Auto | float | None = None  # DPO only


class MethodParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodParams | None = None
    dpo: MethodParams | None = None
    reinforcement: dict[str, Any] | None = None


class ValidationEval(BaseModel):
    """tuneforge extension (send it with the SDK's ``extra_body``): score every checkpoint with graders on the
    validation file. Each item's prompt is its chat without the final assistant turn; that turn is
    ``{{item.reference}}``, the checkpoint's answer ``{{sample.output_text}}``."""

    model_config = ConfigDict(extra="forbid")

    graders: list[dict[str, Any]] = Field(description="OpenAI graders (string_check, text_similarity, "
                                                      "score_model, label_model, python, multi), unique names")
    max_items: int | None = Field(default=None, description="Score the first N usable validation items "
                                                            "(default 32, at most 1000)")
    sampling_params: dict[str, Any] | None = Field(
        default=None, description="temperature, top_p, seed, max_completion_tokens (default temperature 0, "
                                  "max_completion_tokens 256)")


class Distributed(BaseModel):
    """tuneforge extension (send it with the SDK's ``extra_body``): train one job on several data-parallel
    workers (Ray Train ``TorchTrainer``, gloo). Needs ``TUNEFORGE_TRAINING_BACKEND=ray`` when ``num_workers`` > 1."""

    model_config = ConfigDict(extra="forbid")

    num_workers: int = Field(default=1, description="Training workers (ranks), 1 to 64; each trains on its shard "
                                                    "of every batch and the gradients are summed across them")
    cpus_per_worker: float | None = Field(default=None, description="CPUs each worker reserves on the Ray "
                                                                   "cluster (and its torch threads); default 1")


class CreateJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None
    method: Method | None = None
    hyperparameters: Hyperparameters | None = Field(default=None, description="Deprecated: use method")
    integrations: list[dict[str, Any]] | None = None
    validation_eval: ValidationEval | None = Field(default=None, description="tuneforge extension: grade "
                                                                             "every checkpoint")
    distributed: Distributed | None = Field(default=None, description="tuneforge extension: data-parallel "
                                                                      "training workers (Ray backend)")


class CompatCreateRequest(BaseModel):
    """The original simple API's ``POST /fine_tuning``."""

    model_config = ConfigDict(extra="forbid")

    training_file: str
    model: str | None = None
    suffix: str | None = None
    validation_file: str | None = None


class CompatRetrieveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fine_tuning_job_id: str


class JobError(BaseModel):
    code: str
    message: str
    param: str | None


class FineTuningJob(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: str
    hyperparameters: dict[str, Any]
    method: dict[str, Any]
    training_file: str
    validation_file: str | None
    result_files: list[str]
    trained_tokens: int | None
    error: JobError | None
    seed: int
    estimated_finish: int | None
    integrations: list[dict[str, Any]] | None
    metadata: dict[str, str] | None
    user_provided_suffix: str | None


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class JobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobEvent]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class Checkpoint(BaseModel):
    model_config = ConfigDict(extra="allow")  # "tuneforge": {"scoring": {...}} on scored jobs

    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, Any]


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Checkpoint]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool
