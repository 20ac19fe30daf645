"""/v1/fine_tuning/alpha/graders: run a grader on one sample, or check a grader definition."""

from __future__ import annotations

from fastapi import APIRouter

from tuneforge.api.deps import PrincipalDep, RuntimeDep
from tuneforge.api.v1.graders.protocol import (
    GraderRunResponse,
    GraderValidateResponse,
    RunGraderRequest,
    ValidateGraderRequest,
)
from tuneforge.evals import graders

router = APIRouter(tags=["graders"])


@router.post("/fine_tuning/alpha/graders/run", response_model=GraderRunResponse)
async def run_grader(rt: RuntimeDep, principal: PrincipalDep, body: RunGraderRequest):
    return await graders.run_once(rt, principal.project_id, body.grader, body.model_sample, body.item)


@router.post("/fine_tuning/alpha/graders/validate", response_model=GraderValidateResponse)
def validate_grader(principal: PrincipalDep, body: ValidateGraderRequest):
    return {"grader": graders.validate(body.grader)}
