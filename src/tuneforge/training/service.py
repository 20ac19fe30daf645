"""The fine-tuning jobs service the API, the simple API and the console call: one place decides whether a
job is local (``jobs``) or lives on an upstream provider (``upstream_jobs``), wakes the in-process worker
after a change, and follows a job's events for streaming. No FastAPI here.

Upstream answers are returned as ``Upstreamed`` (a dict): they are the provider's objects, passed on
as they are rather than reshaped into this server's models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from tuneforge.errors import InvalidRequest
from tuneforge.training import jobs, upstream_jobs

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

TERMINAL_OR_PAUSED = ("succeeded", "failed", "cancelled", "paused")


class Upstreamed(dict):
    """An upstream provider's answer, to be sent back unchanged."""


def _forwarded(rt: Runtime, session: Session, project_id: str, job_id: str, method: str, suffix: str = "",
               params: dict | None = None) -> Upstreamed | None:
    upstream = upstream_jobs.owner(rt.gateway, session, project_id, job_id)
    if upstream is None:
        return None
    return Upstreamed(rt.gateway.call(upstream, method, f"fine_tuning/jobs/{job_id}{suffix}", params=params or {}))


def create(rt: Runtime, session: Session, project_id: str, body: dict) -> dict:
    """``body``: the create request as the client sent it (unset fields absent)."""
    upstream = rt.gateway.resolve(body.get("model"))
    if upstream is not None:  # e.g. gpt-4o-mini: the job runs at the provider, with copies of the files
        if body.get("distributed") is not None:
            raise InvalidRequest("'distributed' is a tuneforge extension for jobs trained on this server, not for "
                                 "an upstream provider's model.", param="distributed", code="unsupported_parameter")
        return Upstreamed(upstream_jobs.create_job(rt.gateway, rt.store, session, project_id, upstream, body))
    job = jobs.create_job(session, rt.registry, rt.settings, project_id,
                          {k: v for k, v in body.items() if v is not None})
    session.commit()
    rt.wake_training_worker()
    return job


def retrieve(rt: Runtime, session: Session, project_id: str, job_id: str) -> dict:
    return _forwarded(rt, session, project_id, job_id, "GET") or jobs.get_job(session, project_id, job_id)


def control(rt: Runtime, session: Session, project_id: str, job_id: str, action: str) -> dict:
    """cancel / pause / resume: forwarded for an upstream job, else applied here and the worker woken."""
    if (forwarded := _forwarded(rt, session, project_id, job_id, "POST", f"/{action}")) is not None:
        return forwarded
    job = {"cancel": jobs.cancel_job, "pause": jobs.pause_job, "resume": jobs.resume_job}[action](
        session, project_id, job_id)
    session.commit()
    rt.wake_training_worker()
    return job


def checkpoints(rt: Runtime, session: Session, project_id: str, job_id: str, *, after: str | None,
                limit: int) -> dict:
    forwarded = _forwarded(rt, session, project_id, job_id, "GET", "/checkpoints", {"after": after, "limit": limit})
    return forwarded or jobs.list_checkpoints(session, project_id, job_id, after=after, limit=limit)


def events(rt: Runtime, session: Session, project_id: str, job_id: str, *, after: str | None, limit: int) -> dict:
    forwarded = _forwarded(rt, session, project_id, job_id, "GET", "/events", {"after": after, "limit": limit})
    return forwarded or jobs.list_events(session, project_id, job_id, after=after, limit=limit)


def check_streamable(rt: Runtime, session: Session, project_id: str, job_id: str) -> None:
    """Raise before a stream starts: 404 for an unknown job, 400 for an upstream one (poll those)."""
    if upstream_jobs.owner(rt.gateway, session, project_id, job_id) is not None:
        raise InvalidRequest("stream=true is a tuneforge extension for local jobs; poll the events of an "
                             "upstream job instead.", param="stream")
    jobs.get_job_row(session, project_id, job_id)


async def follow_events(rt: Runtime, project_id: str, job_id: str, after_seq: int,
                        disconnected: Callable[[], Awaitable[bool]], *, poll_s: float = 0.5,
                        keepalive_s: float = 15.0) -> AsyncIterator[tuple[int, dict] | None]:
    """Every event after ``after_seq``, oldest first, as ``(seq, event)``; ``None`` now and then while the
    job is quiet (a keep-alive). Ends once the job has finished or paused and nothing is left to send."""
    def fetch(after: int):
        with rt.db.session() as session:
            return jobs.events_since(session, project_id, job_id, after)

    seq, idle = after_seq, 0.0
    while True:
        batch, status = await asyncio.to_thread(fetch, seq)
        for seq, event in batch:
            yield seq, event
        if not batch and status in TERMINAL_OR_PAUSED:
            return
        if batch:
            idle = 0.0
            continue
        if await disconnected():
            return
        await asyncio.sleep(poll_s)
        idle += poll_s
        if idle >= keepalive_s:
            idle = 0.0
            yield None
