"""Wire shapes of /v1/fine_tuning/alpha/graders (the grader is checked by ``evals.graders.validate``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tuneforge.api.schemas import OpenBody


class RunGraderRequest(OpenBody):
    grader: dict[str, Any]
    model_sample: str
    item: Any = None


class ValidateGraderRequest(OpenBody):
    grader: dict[str, Any]


class GraderRunResponse(BaseModel):
    reward: float
    sub_rewards: dict[str, Any]
    model_grader_token_usage_per_model: dict[str, Any]
    metadata: dict[str, Any]


class GraderValidateResponse(BaseModel):
    grader: dict[str, Any]
