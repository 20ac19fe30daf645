"""/v1/evals: evals, their runs and the runs' output items (the runner executes runs in the background)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import PageDep, PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.schemas import sent
from tuneforge.api.v1.evals.protocol import (
    CreateEvalRequest,
    CreateRunRequest,
    EvalDeleted,
    EvalList,
    EvalObject,
    OutputItem,
    OutputItemList,
    RunDeleted,
    RunList,
    RunObject,
    UpdateEvalRequest,
)
from tuneforge.evals import evals, runs

router = APIRouter(tags=["evals"])


async def _commit(rt, work, *args):
    """Run a write in its own session, committed before the response is sent (a ``SessionDep`` commits
    after it, so a client's next request could miss the row)."""
    def _run():
        with rt.db.session() as session:
            return work(session, *args)

    return await run_in_threadpool(_run)


@router.post("/evals", response_model=EvalObject)
async def create_eval(rt: RuntimeDep, principal: PrincipalDep, body: CreateEvalRequest):
    return await _commit(rt, evals.create_eval, principal.project_id, sent(body))


@router.get("/evals", response_model=EvalList)
def list_evals(session: SessionDep, principal: PrincipalDep, page: PageDep,
               order_by: Literal["created_at", "updated_at"] = "created_at"):
    return evals.list_evals(session, principal.project_id, order_by=order_by, **page)


@router.get("/evals/{eval_id}", response_model=EvalObject)
def retrieve_eval(session: SessionDep, principal: PrincipalDep, eval_id: str):
    return evals.eval_object(evals.get_eval(session, principal.project_id, eval_id))


@router.post("/evals/{eval_id}", response_model=EvalObject)
async def update_eval(rt: RuntimeDep, principal: PrincipalDep, eval_id: str, body: UpdateEvalRequest):
    return await _commit(rt, evals.update_eval, principal.project_id, eval_id, sent(body))


@router.delete("/evals/{eval_id}", response_model=EvalDeleted)
async def delete_eval(rt: RuntimeDep, principal: PrincipalDep, eval_id: str):
    return await _commit(rt, evals.delete_eval, principal.project_id, eval_id)


@router.post("/evals/{eval_id}/runs", response_model=RunObject)
async def create_run(rt: RuntimeDep, principal: PrincipalDep, eval_id: str, body: CreateRunRequest):
    run = await _commit(rt, lambda session: runs.create_run(rt, session, principal.project_id, eval_id, sent(body)))
    rt.offline.wake()
    return run


@router.get("/evals/{eval_id}/runs", response_model=RunList)
def list_runs(session: SessionDep, principal: PrincipalDep, eval_id: str, page: PageDep, status: str | None = None):
    return runs.list_runs(session, principal.project_id, eval_id, status=status, **page)


@router.get("/evals/{eval_id}/runs/{run_id}", response_model=RunObject)
def retrieve_run(session: SessionDep, principal: PrincipalDep, eval_id: str, run_id: str):
    return runs.retrieve_run(session, principal.project_id, eval_id, run_id)


@router.post("/evals/{eval_id}/runs/{run_id}/cancel", response_model=RunObject)
@router.post("/evals/{eval_id}/runs/{run_id}", response_model=RunObject, include_in_schema=False)
async def cancel_run(rt: RuntimeDep, principal: PrincipalDep, eval_id: str, run_id: str):
    """The SDK posts to ``.../cancel``; OpenAI's reference also documents a POST to the run itself."""
    return await _commit(rt, runs.cancel_run, principal.project_id, eval_id, run_id)


@router.delete("/evals/{eval_id}/runs/{run_id}", response_model=RunDeleted)
async def delete_run(rt: RuntimeDep, principal: PrincipalDep, eval_id: str, run_id: str):
    return await _commit(rt, runs.delete_run, principal.project_id, eval_id, run_id)


@router.get("/evals/{eval_id}/runs/{run_id}/output_items", response_model=OutputItemList)
def list_output_items(session: SessionDep, principal: PrincipalDep, eval_id: str, run_id: str, page: PageDep,
                      status: str | None = None):
    return runs.list_items(session, principal.project_id, eval_id, run_id, status=status, **page)


@router.get("/evals/{eval_id}/runs/{run_id}/output_items/{output_item_id}", response_model=OutputItem)
def retrieve_output_item(session: SessionDep, principal: PrincipalDep, eval_id: str, run_id: str,
                         output_item_id: str):
    return runs.retrieve_item(session, principal.project_id, eval_id, run_id, output_item_id)
