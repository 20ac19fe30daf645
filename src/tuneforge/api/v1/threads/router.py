"""/v1/threads, their messages, runs and run steps: HTTP translation only.

Run creation is ``async`` so a streaming response can subscribe to the run's events on this
event loop before the run is handed to the executor; database work goes to the thread pool.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import AppState, get_principal, get_session, get_state
from tuneforge.api.v1.assistants.router import page_params
from tuneforge.api.v1.vector_stores.router import json_object
from tuneforge.assistants import runs, service
from tuneforge.assistants.events import DONE
from tuneforge.assistants.executor import executor_for
from tuneforge.assistants.objects import message_object, run_object, thread_object
from tuneforge.projects import Principal
from tuneforge.retrieval.ingest import ingestor_for

router = APIRouter(tags=["threads"])
Include = Query(None, alias="include[]")


def _sse(name: str, data) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _start(state: AppState, created: list[tuple[str, dict]], run: dict, stream: bool):
    executor = executor_for(state)
    if not stream:
        executor.submit(run["id"])
        return run
    queue = executor.bus.subscribe(run["id"])
    executor.submit(run["id"])

    async def events():
        try:
            for name, data in created:
                yield _sse(name, data)
            while True:
                item = await queue.get()
                if item is DONE:
                    break
                yield _sse(*item)
            yield b"event: done\ndata: [DONE]\n\n"
        finally:
            executor.bus.unsubscribe(run["id"], queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---------------------------------------------------------------- threads

@router.post("/threads")
def create_thread(body: dict = Depends(json_object), state: AppState = Depends(get_state),
                  session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return thread_object(service.create_thread(session, ingestor_for(state), principal.project_id, body))


@router.post("/threads/runs")
async def create_thread_and_run(body: dict = Depends(json_object), state: AppState = Depends(get_state),
                                principal: Principal = Depends(get_principal)):
    def _create():
        with state.db.session() as session:
            thread, run = runs.create_thread_and_run(state, session, ingestor_for(state), principal.project_id, body)
            session.commit()
            return thread_object(thread), run_object(run)

    thread, run = await run_in_threadpool(_create)
    return await _start(state, [("thread.created", thread), ("thread.run.created", run), ("thread.run.queued", run)],
                        run, bool(body.get("stream")))


@router.get("/threads/{thread_id}")
def retrieve_thread(thread_id: str, session: Session = Depends(get_session),
                    principal: Principal = Depends(get_principal)):
    return thread_object(service.get_thread(session, principal.project_id, thread_id))


@router.post("/threads/{thread_id}")
def modify_thread(thread_id: str, body: dict = Depends(json_object), state: AppState = Depends(get_state),
                  session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.modify_thread(session, ingestor_for(state), principal.project_id, thread_id, body)


@router.delete("/threads/{thread_id}")
def delete_thread(thread_id: str, session: Session = Depends(get_session),
                  principal: Principal = Depends(get_principal)):
    return service.delete_thread(session, principal.project_id, thread_id)


# ---------------------------------------------------------------- messages

@router.post("/threads/{thread_id}/messages")
def create_message(thread_id: str, body: dict = Depends(json_object), session: Session = Depends(get_session),
                   principal: Principal = Depends(get_principal)):
    return service.create_message(session, principal.project_id, thread_id, body)


@router.get("/threads/{thread_id}/messages")
def list_messages(thread_id: str, run_id: str | None = None, page: dict = Depends(page_params),
                  session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.list_messages(session, principal.project_id, thread_id, run_id=run_id, **page)


@router.get("/threads/{thread_id}/messages/{message_id}")
def retrieve_message(thread_id: str, message_id: str, session: Session = Depends(get_session),
                     principal: Principal = Depends(get_principal)):
    return message_object(service.get_message(session, principal.project_id, thread_id, message_id))


@router.post("/threads/{thread_id}/messages/{message_id}")
def modify_message(thread_id: str, message_id: str, body: dict = Depends(json_object),
                   session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return service.modify_message(session, principal.project_id, thread_id, message_id, body)


@router.delete("/threads/{thread_id}/messages/{message_id}")
def delete_message(thread_id: str, message_id: str, session: Session = Depends(get_session),
                   principal: Principal = Depends(get_principal)):
    return service.delete_message(session, principal.project_id, thread_id, message_id)


# ---------------------------------------------------------------- runs

@router.post("/threads/{thread_id}/runs")
async def create_run(thread_id: str, body: dict = Depends(json_object), include: list[str] | None = Include,
                     state: AppState = Depends(get_state), principal: Principal = Depends(get_principal)):
    def _create():
        with state.db.session() as session:
            thread = service.get_thread(session, principal.project_id, thread_id)
            run = runs.create_run(state, session, principal.project_id, thread, body)
            session.commit()
            return run_object(run)

    run = await run_in_threadpool(_create)
    return await _start(state, [("thread.run.created", run), ("thread.run.queued", run)], run,
                        bool(body.get("stream")))


@router.get("/threads/{thread_id}/runs")
def list_runs(thread_id: str, page: dict = Depends(page_params), session: Session = Depends(get_session),
              principal: Principal = Depends(get_principal)):
    return runs.list_runs(session, principal.project_id, thread_id, **page)


@router.get("/threads/{thread_id}/runs/{run_id}")
def retrieve_run(thread_id: str, run_id: str, session: Session = Depends(get_session),
                 principal: Principal = Depends(get_principal)):
    return run_object(runs.get_run(session, principal.project_id, thread_id, run_id))


@router.post("/threads/{thread_id}/runs/{run_id}")
def modify_run(thread_id: str, run_id: str, body: dict = Depends(json_object), session: Session = Depends(get_session),
               principal: Principal = Depends(get_principal)):
    return runs.modify_run(session, principal.project_id, thread_id, run_id, body)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
def cancel_run(thread_id: str, run_id: str, state: AppState = Depends(get_state),
               session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    row = runs.cancel_run(session, principal.project_id, thread_id, run_id)
    if row.status == "cancelling":
        executor_for(state).cancel(row.id)
    return run_object(row)


@router.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
def submit_tool_outputs(thread_id: str, run_id: str, session: Session = Depends(get_session),
                        principal: Principal = Depends(get_principal)):
    from tuneforge.errors import InvalidRequest

    row = runs.get_run(session, principal.project_id, thread_id, run_id)
    raise InvalidRequest(f"Run {row.id} does not require tool outputs (status '{row.status}'): this server "
                         "does not call function tools.", param="run_id")


@router.get("/threads/{thread_id}/runs/{run_id}/steps")
def list_run_steps(thread_id: str, run_id: str, include: list[str] | None = Include, page: dict = Depends(page_params),
                   session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return runs.list_steps(session, principal.project_id, thread_id, run_id, include, **page)


@router.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
def retrieve_run_step(thread_id: str, run_id: str, step_id: str, include: list[str] | None = Include,
                      session: Session = Depends(get_session), principal: Principal = Depends(get_principal)):
    return runs.get_step(session, principal.project_id, thread_id, run_id, step_id, include)
