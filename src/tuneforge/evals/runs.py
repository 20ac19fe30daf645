"""Eval runs and their output items: create (the data source checked and its items stored, so the run is
durable from the start), retrieve with live counts, list, cancel, delete. The offline runner
(``evals.runner``) takes a queued run to ``completed`` / ``failed``; ``canceled`` is set here."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tuneforge.db import leases
from tuneforge.db.models import EvalItemRow, EvalRow, EvalRunRow, now_s
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import Conflict, InvalidRequest, NotFound
from tuneforge.evals import datasource
from tuneforge.evals.evals import get_eval
from tuneforge.ids import new_id
from tuneforge.retrieval.meta import check_metadata, dumps, loads

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

TERMINAL = ("completed", "failed", "canceled")
UNFINISHED = ("queued", "in_progress")
RUN_STATUSES = ("queued", "in_progress", "completed", "failed", "canceled")


def create_run(rt: Runtime, session: Session, project_id: str, eval_id: str, body: dict) -> dict:
    ev = get_eval(session, project_id, eval_id)
    source = datasource.parse(rt, session, project_id, json.loads(ev.data_source_config), body.get("data_source"))
    metadata = check_metadata(body.get("metadata"))
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidRequest("'name' must be a string.", param="name")
    run_id = new_id("evalrun_")
    created = now_s()
    run = EvalRunRow(id=run_id, eval_id=ev.id, project_id=project_id, name=name or run_id, model=source.model,
                     data_source=json.dumps(source.data_source), status="queued", metadata_json=dumps(metadata),
                     created_at=created)
    session.add(run)
    session.flush()
    session.bulk_save_objects([
        EvalItemRow(id=new_id("outputitem_"), run_id=run_id, item_index=i, item=json.dumps(item),
                    given_sample=dumps(sample), status="pending", created_at=created)
        for i, (item, sample) in enumerate(source.items)])
    session.flush()
    return run_object(session, run)


def get_run(session: Session, project_id: str, eval_id: str, run_id: str) -> EvalRunRow:
    run = session.get(EvalRunRow, run_id)
    if run is None or run.project_id != project_id or run.eval_id != eval_id:
        raise NotFound(f"No run found with id '{run_id}' in eval '{eval_id}'.", param="run_id")
    return run


def _counts(session: Session, run_id: str) -> dict:
    rows = session.execute(select(EvalItemRow.status, func.count()).where(EvalItemRow.run_id == run_id)
                           .group_by(EvalItemRow.status)).all()
    by = dict(rows)
    return {"total": sum(by.values()), "passed": by.get("pass", 0), "failed": by.get("fail", 0),
            "errored": by.get("error", 0)}


def _aggregates(session: Session, run_id: str) -> tuple[list[dict], list[dict]]:
    """Per-criterion pass/fail and per-model token usage, summed over the finished items."""
    criteria: dict[str, dict] = {}
    usage: dict[str, dict] = defaultdict(lambda: {"invocation_count": 0, "prompt_tokens": 0,
                                                  "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0})
    stmt = select(EvalItemRow.results, EvalItemRow.usage).where(EvalItemRow.run_id == run_id,
                                                                 EvalItemRow.status != "pending")
    for results, item_usage in session.execute(stmt):
        for result in json.loads(results or "[]"):
            entry = criteria.setdefault(result["name"], {"testing_criteria": result["name"], "passed": 0,
                                                         "failed": 0})
            entry["passed" if result["passed"] else "failed"] += 1
        for model, counts in json.loads(item_usage or "{}").items():
            total = usage[model]
            total["invocation_count"] += counts.get("invocation_count", 0)
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                total[key] += counts.get(key, 0)
    per_model = [{"model_name": model, **counts} for model, counts in usage.items()]
    return list(criteria.values()), per_model


def run_object(session: Session, run: EvalRunRow) -> dict:
    per_criteria, per_model = _aggregates(session, run.id)
    return {
        "object": "eval.run", "id": run.id, "eval_id": run.eval_id, "name": run.name, "model": run.model,
        "status": run.status, "created_at": run.created_at, "data_source": json.loads(run.data_source),
        "error": loads(run.error), "metadata": loads(run.metadata_json, {}),
        # no web console yet: the API page of the run's output items is the report
        "report_url": f"/v1/evals/{run.eval_id}/runs/{run.id}/output_items",
        "result_counts": _counts(session, run.id), "per_model_usage": per_model,
        "per_testing_criteria_results": per_criteria,
    }


def retrieve_run(session: Session, project_id: str, eval_id: str, run_id: str) -> dict:
    return run_object(session, get_run(session, project_id, eval_id, run_id))


def list_runs(session: Session, project_id: str, eval_id: str, *, limit: int, order: str, after: str | None,
              before: str | None = None, status: str | None = None) -> dict:
    get_eval(session, project_id, eval_id)
    stmt = select(EvalRunRow).where(EvalRunRow.eval_id == eval_id, EvalRunRow.project_id == project_id)
    if status is not None:
        if status not in RUN_STATUSES:
            raise InvalidRequest(f"Invalid 'status': expected one of {list(RUN_STATUSES)}.", param="status")
        stmt = stmt.where(EvalRunRow.status == status)
    return paginate(session, stmt, EvalRunRow.id, limit=check_limit(limit, 100), order=order, after=after,
                    before=before, serialize=lambda r: run_object(session, r))


def cancel_run(session: Session, project_id: str, eval_id: str, run_id: str) -> dict:
    run = get_run(session, project_id, eval_id, run_id)
    if run.status in ("completed", "failed"):
        raise Conflict(f"Run '{run_id}' already {run.status}; it cannot be canceled.")
    if run.status != "canceled":
        run.status, run.finished_at = "canceled", now_s()  # the runner sees it before its next item
        session.flush()
    return run_object(session, run)


def delete_run(session: Session, project_id: str, eval_id: str, run_id: str) -> dict:
    run = get_run(session, project_id, eval_id, run_id)
    if run.status in ("queued", "in_progress"):
        run.status = "canceled"
        session.flush()
    session.query(EvalItemRow).filter(EvalItemRow.run_id == run_id).delete(synchronize_session=False)
    session.delete(run)
    session.flush()
    return {"object": "eval.run.deleted", "deleted": True, "run_id": run_id}


# ------------------------------------------------------------------------------------ output items

_ITEM_STATUSES = ("pass", "fail", "error")


def item_object(row: EvalItemRow, run: EvalRunRow) -> dict:
    return {"object": "eval.run.output_item", "id": row.id, "run_id": run.id, "eval_id": run.eval_id,
            "created_at": row.created_at, "status": row.status, "datasource_item_id": row.item_index,
            "datasource_item": json.loads(row.item), "results": loads(row.results, []),
            "sample": loads(row.sample)}


def list_items(session: Session, project_id: str, eval_id: str, run_id: str, *, limit: int, order: str,
               after: str | None, before: str | None = None, status: str | None = None) -> dict:
    run = get_run(session, project_id, eval_id, run_id)
    stmt = select(EvalItemRow).where(EvalItemRow.run_id == run_id, EvalItemRow.status != "pending")
    if status is not None:
        if status not in _ITEM_STATUSES:
            raise InvalidRequest(f"Invalid 'status': expected one of {list(_ITEM_STATUSES)}.", param="status")
        stmt = stmt.where(EvalItemRow.status == status)
    return paginate(session, stmt, EvalItemRow.id, limit=check_limit(limit, 100), order=order, after=after,
                    before=before, serialize=lambda r: item_object(r, run))


def retrieve_item(session: Session, project_id: str, eval_id: str, run_id: str, item_id: str) -> dict:
    run = get_run(session, project_id, eval_id, run_id)
    row = session.get(EvalItemRow, item_id)
    if row is None or row.run_id != run_id or row.status == "pending":
        raise NotFound(f"No output item found with id '{item_id}' in run '{run_id}'.", param="output_item_id")
    return item_object(row, run)


def unfinished_runs(session: Session, *, available_to: str | None = None) -> list[str]:
    """Runs the runner still owes work to, oldest first (after a restart: the ones it was doing); with
    ``available_to``, only those that server may claim (see ``tuneforge.db.leases``)."""
    stmt = select(EvalRunRow.id).where(EvalRunRow.status.in_(UNFINISHED))
    if available_to is not None:
        stmt = stmt.where(leases.available(EvalRunRow, available_to))
    return list(session.scalars(stmt.order_by(EvalRunRow.id)))


def eval_of(session: Session, run: EvalRunRow) -> EvalRow:
    return session.get(EvalRow, run.eval_id)
