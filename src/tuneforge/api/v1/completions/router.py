"""/v1/completions (legacy): HTTP translation only; the logic is in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tuneforge.api.deps import PrincipalDep, RuntimeDep
from tuneforge.api.http import generation_endpoint, schema
from tuneforge.api.v1.completions.protocol import CompletionRequest

router = APIRouter(tags=["completions"])


@router.post("/completions", openapi_extra=schema(CompletionRequest))
async def create_completion(state: RuntimeDep, principal: PrincipalDep, request: Request):
    from tuneforge.serving import (
        completions as service,  # pulls in torch: loaded on first use, not at start-up
    )

    return await generation_endpoint(
        request, state, principal, path="completions", request_model=CompletionRequest, service=service
    )
