"""/v1/fine_tuning: HTTP translation only; the logic is in service.py."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import AppState, get_principal, get_session, get_state
from tuneforge.api.v1.fine_tuning import service
from tuneforge.api.v1.fine_tuning import upstream as upstream_jobs
from tuneforge.api.v1.fine_tuning.protocol import (
    CheckpointList,
    CreateJobRequest,
    EventList,
    FineTuningJob,
    JobList,
)
from tuneforge.errors import InvalidRequest
from tuneforge.inference.runtime import get_upstreams
from tuneforge.projects import Principal

router = APIRouter(tags=["fine-tuning"])
STREAM_POLL_S = 0.5
KEEPALIVE_S = 15.0


def wake_worker(state: AppState) -> None:
    worker = state.extras.get("training_worker")
    if worker is not None:
        worker.wake()


def _forwarded(state: AppState, session: Session, principal: Principal, job_id: str, method: str, suffix: str = "",
               params: dict | None = None) -> JSONResponse | None:
    """The upstream's answer when ``job_id`` is this project's job on an upstream provider, else None.
    Returned as-is (not through our response models): the upstream's object is the truth."""
    upstream = upstream_jobs.owner(get_upstreams(state), session, principal.project_id, job_id)
    if upstream is None:
        return None
    return JSONResponse(upstream_jobs.forward(upstream, method, f"fine_tuning/jobs/{job_id}{suffix}", params))


@router.post("/fine_tuning/jobs", response_model=FineTuningJob)
def create_job(body: CreateJobRequest, state: AppState = Depends(get_state), session: Session = Depends(get_session),
               principal: Principal = Depends(get_principal)):
    upstream = get_upstreams(state).match(body.model)
    if upstream is not None:  # e.g. gpt-4o-mini: the job runs at the provider, with copies of the files
        return JSONResponse(upstream_jobs.create_job(state, session, principal.project_id, upstream,
                                                     body.model_dump(exclude_unset=True)))
    job = service.create_job(session, state.registry, state.settings, principal.project_id,
                             body.model_dump(exclude_none=True))
    session.commit()
    wake_worker(state)
    return job


@router.get("/fine_tuning/jobs", response_model=JobList)
def list_jobs(request: Request, after: str | None = None, limit: int = Query(20),
              session: Session = Depends(get_session), principal: Principal = Depends(get_principal)) -> dict:
    # The SDK sends the metadata filter as metadata[key]=value.
    metadata = {k[len("metadata["):-1]: v for k, v in request.query_params.items()
                if k.startswith("metadata[") and k.endswith("]")}
    return service.list_jobs(session, principal.project_id, after=after, limit=limit, metadata=metadata or None)


@router.get("/fine_tuning/jobs/{job_id}", response_model=FineTuningJob)
def retrieve_job(job_id: str, state: AppState = Depends(get_state), session: Session = Depends(get_session),
                 principal: Principal = Depends(get_principal)):
    if (forwarded := _forwarded(state, session, principal, job_id, "GET")) is not None:
        return forwarded
    return service.get_job(session, principal.project_id, job_id)


def _control(action: str, state: AppState, session: Session, principal: Principal, job_id: str):
    """cancel / pause / resume: forwarded for an upstream job, else applied here and the worker woken."""
    if (forwarded := _forwarded(state, session, principal, job_id, "POST", f"/{action}")) is not None:
        return forwarded
    job = getattr(service, f"{action}_job")(session, principal.project_id, job_id)
    session.commit()
    wake_worker(state)
    return job


@router.post("/fine_tuning/jobs/{job_id}/cancel", response_model=FineTuningJob)
def cancel_job(job_id: str, state: AppState = Depends(get_state), session: Session = Depends(get_session),
               principal: Principal = Depends(get_principal)):
    return _control("cancel", state, session, principal, job_id)


@router.post("/fine_tuning/jobs/{job_id}/pause", response_model=FineTuningJob)
def pause_job(job_id: str, state: AppState = Depends(get_state), session: Session = Depends(get_session),
              principal: Principal = Depends(get_principal)):
    return _control("pause", state, session, principal, job_id)


@router.post("/fine_tuning/jobs/{job_id}/resume", response_model=FineTuningJob)
def resume_job(job_id: str, state: AppState = Depends(get_state), session: Session = Depends(get_session),
               principal: Principal = Depends(get_principal)):
    return _control("resume", state, session, principal, job_id)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints", response_model=CheckpointList)
def list_checkpoints(job_id: str, after: str | None = None, limit: int = Query(10),
                     state: AppState = Depends(get_state), session: Session = Depends(get_session),
                     principal: Principal = Depends(get_principal)):
    forwarded = _forwarded(state, session, principal, job_id, "GET", "/checkpoints", {"after": after, "limit": limit})
    if forwarded is not None:
        return forwarded
    return service.list_checkpoints(session, principal.project_id, job_id, after=after, limit=limit)


@router.get("/fine_tuning/jobs/{job_id}/events", response_model=EventList,
            responses={200: {"content": {"text/event-stream": {}}}})
def list_events(request: Request, job_id: str, after: str | None = None, limit: int = Query(20),
                stream: bool = Query(False, description="tuneforge extension: SSE of events as they happen"),
                state: AppState = Depends(get_state), session: Session = Depends(get_session),
                principal: Principal = Depends(get_principal)):
    if stream and upstream_jobs.owner(get_upstreams(state), session, principal.project_id, job_id) is not None:
        raise InvalidRequest("stream=true is a tuneforge extension for local jobs; poll the events of an "
                             "upstream job instead.", param="stream")
    forwarded = _forwarded(state, session, principal, job_id, "GET", "/events", {"after": after, "limit": limit})
    if forwarded is not None:
        return forwarded
    if not stream:
        return service.list_events(session, principal.project_id, job_id, after=after, limit=limit)
    service.get_job_row(session, principal.project_id, job_id)  # 404 before the stream starts
    session.commit()  # hold no transaction open while streaming
    last = request.headers.get("last-event-id", "0")
    start = int(last) if last.isdigit() else 0
    return StreamingResponse(_event_stream(request, state, principal.project_id, job_id, start),
                             media_type="text/event-stream", headers={"cache-control": "no-cache"})


async def _event_stream(request: Request, state: AppState, project_id: str, job_id: str, seq: int):
    """Every event oldest first (``id:`` is a cursor for Last-Event-ID), then ``[DONE]`` once the job
    has finished or paused and nothing is left to send."""
    def fetch(after: int):
        with state.db.session() as session:
            return service.events_since(session, project_id, job_id, after)

    idle = 0.0
    while True:
        events, status = await run_in_threadpool(fetch, seq)
        for seq, event in events:
            yield f"id: {seq}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
        if not events and status in ("succeeded", "failed", "cancelled", "paused"):
            yield "data: [DONE]\n\n"
            return
        if events:
            idle = 0.0
            continue
        if await request.is_disconnected():
            return
        await asyncio.sleep(STREAM_POLL_S)
        idle += STREAM_POLL_S
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
