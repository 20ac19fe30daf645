"""Wire shapes of /v1/evals (graders and data sources are checked by the ``evals`` services)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tuneforge.api.schemas import OpenBody


class CreateEvalRequest(OpenBody):
    data_source_config: dict[str, Any]
    testing_criteria: list[dict[str, Any]]
    name: str | None = None
    metadata: dict[str, Any] | None = None


class UpdateEvalRequest(OpenBody):
    name: str | None = None
    metadata: dict[str, Any] | None = None


class CreateRunRequest(OpenBody):
    data_source: dict[str, Any]
    name: str | None = None
    metadata: dict[str, Any] | None = None


class EvalObject(BaseModel):
    id: str
    object: str
    name: str
    created_at: int
    data_source_config: dict[str, Any]
    testing_criteria: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None


class EvalDeleted(BaseModel):
    object: str
    deleted: bool
    eval_id: str


class RunObject(BaseModel):
    id: str
    object: str
    eval_id: str
    name: str
    model: str
    status: str
    created_at: int
    data_source: dict[str, Any]
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    report_url: str
    result_counts: dict[str, int]
    per_model_usage: list[dict[str, Any]]
    per_testing_criteria_results: list[dict[str, Any]]


class RunDeleted(BaseModel):
    object: str
    deleted: bool
    run_id: str


class OutputItem(BaseModel):
    id: str
    object: str
    run_id: str
    eval_id: str
    created_at: int
    status: str
    datasource_item_id: int
    datasource_item: Any
    results: list[dict[str, Any]]
    sample: dict[str, Any] | None = None


class Page(BaseModel):
    object: str
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class EvalList(Page):
    data: list[EvalObject]


class RunList(Page):
    data: list[RunObject]


class OutputItemList(Page):
    data: list[OutputItem]
