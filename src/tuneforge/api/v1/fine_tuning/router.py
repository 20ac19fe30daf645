"""/v1/fine_tuning: HTTP translation only; ``tuneforge.training.service`` decides local or upstream."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from tuneforge.api import sse
from tuneforge.api.deps import PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.v1.fine_tuning.protocol import (
    CheckpointList,
    CreateJobRequest,
    EventList,
    FineTuningJob,
    JobList,
)
from tuneforge.evals import checkpoint_scoring
from tuneforge.training import jobs, service

router = APIRouter(tags=["fine-tuning"])


def _respond(result: dict):
    """An upstream's object goes back as it is; ours through the route's response model."""
    return JSONResponse(result) if isinstance(result, service.Upstreamed) else result


@router.post("/fine_tuning/jobs", response_model=FineTuningJob)
def create_job(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, body: CreateJobRequest):
    # evals.checkpoint_scoring checks the validation_eval extension, then hands over to training.service
    return _respond(checkpoint_scoring.create_job(rt, session, principal.project_id,
                                                  body.model_dump(exclude_unset=True)))


@router.get("/fine_tuning/jobs", response_model=JobList)
def list_jobs(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    after: str | None = None,
    limit: int = Query(20),
) -> dict:
    # The SDK sends the metadata filter as metadata[key]=value.
    metadata = {
        k[len("metadata[") : -1]: v
        for k, v in request.query_params.items()
        if k.startswith("metadata[") and k.endswith("]")
    }
    return jobs.list_jobs(session, principal.project_id, after=after, limit=limit, metadata=metadata or None)


@router.get("/fine_tuning/jobs/{job_id}", response_model=FineTuningJob)
def retrieve_job(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, job_id: str):
    return _respond(service.retrieve(rt, session, principal.project_id, job_id))


@router.post("/fine_tuning/jobs/{job_id}/cancel", response_model=FineTuningJob)
def cancel_job(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, job_id: str):
    return _respond(service.control(rt, session, principal.project_id, job_id, "cancel"))


@router.post("/fine_tuning/jobs/{job_id}/pause", response_model=FineTuningJob)
def pause_job(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, job_id: str):
    return _respond(service.control(rt, session, principal.project_id, job_id, "pause"))


@router.post("/fine_tuning/jobs/{job_id}/resume", response_model=FineTuningJob)
def resume_job(rt: RuntimeDep, session: SessionDep, principal: PrincipalDep, job_id: str):
    return _respond(service.control(rt, session, principal.project_id, job_id, "resume"))


@router.get("/fine_tuning/jobs/{job_id}/checkpoints", response_model=CheckpointList)
def list_checkpoints(
    rt: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    job_id: str,
    after: str | None = None,
    limit: int = Query(10),
):
    return _respond(service.checkpoints(rt, session, principal.project_id, job_id, after=after, limit=limit))


@router.get(
    "/fine_tuning/jobs/{job_id}/events",
    response_model=EventList,
    responses={200: {"content": {"text/event-stream": {}}}},
)
def list_events(
    request: Request,
    rt: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    job_id: str,
    after: str | None = None,
    limit: int = Query(20),
    stream: bool = Query(False, description="tuneforge extension: SSE of events as they happen"),
):
    if not stream:
        return _respond(service.events(rt, session, principal.project_id, job_id, after=after, limit=limit))
    service.check_streamable(rt, session, principal.project_id, job_id)
    session.commit()  # hold no transaction open while streaming
    last = request.headers.get("last-event-id", "0")

    async def events():
        async for item in service.follow_events(
            rt, principal.project_id, job_id, int(last) if last.isdigit() else 0, request.is_disconnected
        ):
            yield sse.KEEPALIVE if item is None else sse.ServerEvent(item[1], id=item[0])

    return sse.sse_response(events())
