"""/v1/batches: OpenAI's Batch API (the offline runner executes the lines)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from tuneforge.api.deps import PrincipalDep, RuntimeDep, SessionDep
from tuneforge.api.schemas import sent
from tuneforge.api.v1.batches.protocol import BatchList, BatchObject, CreateBatchRequest
from tuneforge.evals import batches

router = APIRouter(tags=["batches"])


@router.post("/batches", response_model=BatchObject)
async def create_batch(rt: RuntimeDep, principal: PrincipalDep, body: CreateBatchRequest):
    def _create() -> dict:
        with rt.db.session() as session:  # committed before the runner is woken
            return batches.create_batch(rt, session, principal.project_id, sent(body))

    batch = await run_in_threadpool(_create)
    rt.offline.wake()
    return batch


@router.get("/batches", response_model=BatchList)
def list_batches(session: SessionDep, principal: PrincipalDep, limit: int = Query(20), after: str | None = None):
    return batches.list_batches(session, principal.project_id, limit=limit, after=after)


@router.get("/batches/{batch_id}", response_model=BatchObject)
def retrieve_batch(session: SessionDep, principal: PrincipalDep, batch_id: str):
    return batches.retrieve_batch(session, principal.project_id, batch_id)


@router.post("/batches/{batch_id}/cancel", response_model=BatchObject)
async def cancel_batch(rt: RuntimeDep, principal: PrincipalDep, batch_id: str):
    def _cancel() -> dict:
        with rt.db.session() as session:
            return batches.cancel_batch(session, principal.project_id, batch_id)

    batch = await run_in_threadpool(_cancel)
    rt.offline.wake()
    return batch
