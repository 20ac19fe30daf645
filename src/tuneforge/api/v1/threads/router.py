"""/v1/threads, their messages, runs and run steps: HTTP translation only.

Run creation is ``async`` so a streaming response can subscribe to the run's events on this
event loop before the run is handed to the executor; database work goes to the thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from tuneforge.api import sse
from tuneforge.api.deps import PageDep, PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.schemas import sent
from tuneforge.api.v1.threads.protocol import (
    CreateMessageRequest,
    CreateRunRequest,
    CreateThreadAndRunRequest,
    CreateThreadRequest,
    ModifyRequest,
    ModifyThreadRequest,
    SubmitToolOutputsRequest,
)
from tuneforge.assistants import runs, service
from tuneforge.assistants.objects import message_object, run_object, thread_object
from tuneforge.runtime import Runtime

router = APIRouter(tags=["threads"])
Include = Query(None, alias="include[]")


async def _start(rt: Runtime, created: list[tuple[str, dict]], run: dict, stream: bool):
    if not stream:
        rt.runs.submit(run["id"])
        return run

    async def events():
        async for name, data in rt.runs.submit_streaming(run["id"], created):
            yield sse.ServerEvent(data, name=name)

    return sse.sse_response(events(), done=sse.ServerEvent("[DONE]", name="done"))


# ---------------------------------------------------------------- threads


@router.post("/threads")
def create_thread(
    state: RuntimeDep, session: SessionDep, principal: PrincipalDep, body: CreateThreadRequest | None = None
):
    return thread_object(service.create_thread(session, state.ingestor, principal.project_id, sent(body)))


@router.post("/threads/runs")
async def create_thread_and_run(state: RuntimeDep, principal: PrincipalDep, body: CreateThreadAndRunRequest):
    def _create():
        with state.db.session() as session:
            thread, run = runs.create_thread_and_run(
                state, session, state.ingestor, principal.project_id, sent(body)
            )
            session.commit()
            return thread_object(thread), run_object(run)

    thread, run = await run_in_threadpool(_create)
    return await _start(
        state,
        [("thread.created", thread), ("thread.run.created", run), ("thread.run.queued", run)],
        run,
        bool(body.stream),
    )


@router.get("/threads/{thread_id}")
def retrieve_thread(session: SessionDep, principal: PrincipalDep, thread_id: str):
    return thread_object(service.get_thread(session, principal.project_id, thread_id))


@router.post("/threads/{thread_id}")
def modify_thread(
    state: RuntimeDep,
    session: SessionDep,
    principal: PrincipalDep,
    thread_id: str,
    body: ModifyThreadRequest | None = None,
):
    return service.modify_thread(session, state.ingestor, principal.project_id, thread_id, sent(body))


@router.delete("/threads/{thread_id}")
def delete_thread(session: SessionDep, principal: PrincipalDep, thread_id: str):
    return service.delete_thread(session, principal.project_id, thread_id)


# ---------------------------------------------------------------- messages


@router.post("/threads/{thread_id}/messages")
def create_message(session: SessionDep, principal: PrincipalDep, body: CreateMessageRequest, thread_id: str):
    return service.create_message(session, principal.project_id, thread_id, sent(body))


@router.get("/threads/{thread_id}/messages")
def list_messages(
    session: SessionDep, principal: PrincipalDep, page: PageDep, thread_id: str, run_id: str | None = None
):
    return service.list_messages(session, principal.project_id, thread_id, run_id=run_id, **page)


@router.get("/threads/{thread_id}/messages/{message_id}")
def retrieve_message(session: SessionDep, principal: PrincipalDep, thread_id: str, message_id: str):
    return message_object(service.get_message(session, principal.project_id, thread_id, message_id))


@router.post("/threads/{thread_id}/messages/{message_id}")
def modify_message(
    session: SessionDep,
    principal: PrincipalDep,
    thread_id: str,
    message_id: str,
    body: ModifyRequest | None = None,
):
    return service.modify_message(session, principal.project_id, thread_id, message_id, sent(body))


@router.delete("/threads/{thread_id}/messages/{message_id}")
def delete_message(session: SessionDep, principal: PrincipalDep, thread_id: str, message_id: str):
    return service.delete_message(session, principal.project_id, thread_id, message_id)


# ---------------------------------------------------------------- runs


@router.post("/threads/{thread_id}/runs")
async def create_run(
    state: RuntimeDep,
    principal: PrincipalDep,
    body: CreateRunRequest,
    thread_id: str,
    include: list[str] | None = Include,
):
    def _create():
        with state.db.session() as session:
            thread = service.get_thread(session, principal.project_id, thread_id)
            run = runs.create_run(state, session, principal.project_id, thread, sent(body))
            session.commit()
            return run_object(run)

    run = await run_in_threadpool(_create)
    return await _start(
        state, [("thread.run.created", run), ("thread.run.queued", run)], run, bool(body.stream)
    )


@router.get("/threads/{thread_id}/runs")
def list_runs(session: SessionDep, principal: PrincipalDep, page: PageDep, thread_id: str):
    return runs.list_runs(session, principal.project_id, thread_id, **page)


@router.get("/threads/{thread_id}/runs/{run_id}")
def retrieve_run(session: SessionDep, principal: PrincipalDep, thread_id: str, run_id: str):
    return run_object(runs.get_run(session, principal.project_id, thread_id, run_id))


@router.post("/threads/{thread_id}/runs/{run_id}")
def modify_run(
    session: SessionDep,
    principal: PrincipalDep,
    thread_id: str,
    run_id: str,
    body: ModifyRequest | None = None,
):
    return runs.modify_run(session, principal.project_id, thread_id, run_id, sent(body))


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
def cancel_run(state: RuntimeDep, session: SessionDep, principal: PrincipalDep, thread_id: str, run_id: str):
    row = runs.cancel_run(session, principal.project_id, thread_id, run_id)
    if row.status == "cancelling":
        state.runs.cancel(row.id)
    return run_object(row)


@router.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(
    state: RuntimeDep, principal: PrincipalDep, thread_id: str, run_id: str, body: SubmitToolOutputsRequest
):
    def _submit():
        with state.db.session() as session:
            run = runs.submit_tool_outputs(session, principal.project_id, thread_id, run_id, sent(body))
            return run_object(run)

    run = await run_in_threadpool(_submit)
    return await _start(state, [("thread.run.queued", run)], run, bool(body.stream))


@router.get("/threads/{thread_id}/runs/{run_id}/steps")
def list_run_steps(
    session: SessionDep,
    principal: PrincipalDep,
    page: PageDep,
    thread_id: str,
    run_id: str,
    include: list[str] | None = Include,
):
    return runs.list_steps(session, principal.project_id, thread_id, run_id, include, **page)


@router.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
def retrieve_run_step(
    session: SessionDep,
    principal: PrincipalDep,
    thread_id: str,
    run_id: str,
    step_id: str,
    include: list[str] | None = Include,
):
    return runs.get_step(session, principal.project_id, thread_id, run_id, step_id, include)
