"""OpenAI's Batch API: a JSONL file of requests run offline, answers collected in an output file.

Create reads and checks every line at once: a line that is not JSON, lacks a ``custom_id``, repeats one,
names another endpoint or has a body the endpoint would refuse goes to the error file with its line
number — the rest of the batch still runs. The offline runner then sends the valid lines through the same
services as the HTTP endpoints (background priority: interactive requests go first), one commit per
line, so a restart resumes where it stopped. At the end (or on cancel, keeping what finished) the
output file (``batch_output``) holds one line per answered request and the error file one per failed
line, each with its ``custom_id``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tuneforge.db import leases
from tuneforge.db.models import BatchRequestRow, BatchRow, now_s
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import Conflict, InvalidRequest, NotFound, TuneforgeError
from tuneforge.evals import offline
from tuneforge.ids import new_id
from tuneforge.retrieval.meta import check_metadata, dumps, loads

if TYPE_CHECKING:
    from tuneforge.runtime import Runtime

MAX_LINES = 50_000
WINDOW_S = 24 * 3600
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")


def batch_object(session: Session, row: BatchRow) -> dict:
    counts = dict(session.execute(select(BatchRequestRow.status, func.count())
                                  .where(BatchRequestRow.batch_id == row.id).group_by(BatchRequestRow.status)).all())
    tokens = session.execute(select(func.coalesce(func.sum(BatchRequestRow.prompt_tokens), 0),
                                    func.coalesce(func.sum(BatchRequestRow.completion_tokens), 0))
                             .where(BatchRequestRow.batch_id == row.id)).one()
    errors = loads(row.errors)
    return {
        "id": row.id, "object": "batch", "endpoint": row.endpoint, "model": row.model,
        "errors": {"object": "list", "data": errors} if errors else None,
        "input_file_id": row.input_file_id, "completion_window": row.completion_window, "status": row.status,
        "output_file_id": row.output_file_id, "error_file_id": row.error_file_id, "created_at": row.created_at,
        "in_progress_at": row.in_progress_at, "expires_at": row.expires_at, "finalizing_at": row.finalizing_at,
        "completed_at": row.completed_at, "failed_at": row.failed_at, "expired_at": None,
        "cancelling_at": row.cancelling_at, "cancelled_at": row.cancelled_at,
        "request_counts": {"total": sum(counts.values()), "completed": counts.get("completed", 0),
                           "failed": counts.get("failed", 0)},
        "usage": {"input_tokens": int(tokens[0]), "output_tokens": int(tokens[1]),
                  "total_tokens": int(tokens[0] + tokens[1]), "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
        "metadata": loads(row.metadata_json, {}),
    }


def _line_error(request_id: str, custom_id, line: int, code: str, message: str, param: str | None = None) -> str:
    return json.dumps({"id": request_id, "custom_id": custom_id, "response": None,
                       "error": {"code": code, "message": message, "line": line, "param": param}})


def _parse_line(text: str, number: int, endpoint: str, seen: set[str]) -> BatchRequestRow:
    request_id = new_id("batch_req_")
    row = BatchRequestRow(id=request_id, line=number, status="pending", prompt_tokens=0, completion_tokens=0)

    def fail(code: str, message: str, param: str | None = None) -> BatchRequestRow:
        row.status, row.output = "failed", _line_error(request_id, row.custom_id, number, code, message, param)
        return row

    try:
        data = json.loads(text)
    except ValueError:
        return fail("invalid_json_line", f"Line {number} is not valid JSON.")
    if not isinstance(data, dict):
        return fail("invalid_request", f"Line {number} must be a JSON object.")
    custom_id = data.get("custom_id")
    if isinstance(custom_id, str):
        row.custom_id = custom_id[:512]
    if not isinstance(custom_id, str) or not custom_id:
        return fail("missing_required_parameter", f"Line {number}: 'custom_id' (a string) is required.", "custom_id")
    if custom_id in seen:
        return fail("duplicate_custom_id", f"Line {number}: custom_id {custom_id!r} is used more than once.",
                    "custom_id")
    seen.add(custom_id)
    if data.get("method", "POST") != "POST":
        return fail("invalid_method", f"Line {number}: 'method' must be 'POST'.", "method")
    if data.get("url") != endpoint:
        return fail("mismatched_url", f"Line {number}: 'url' is {data.get('url')!r} but the batch's endpoint is "
                    f"{endpoint!r}.", "url")
    body = data.get("body")
    if not isinstance(body, dict):
        return fail("invalid_request", f"Line {number}: 'body' must be an object.", "body")
    try:
        offline.check_body(endpoint, body)
    except InvalidRequest as exc:
        return fail("invalid_request", f"Line {number}: {exc.message}", exc.param)
    row.body = json.dumps(body)
    return row


def create_batch(rt: Runtime, session: Session, project_id: str, body: dict) -> dict:
    from tuneforge.files import service as files

    endpoint = body.get("endpoint")
    if endpoint not in offline.ENDPOINTS:
        raise InvalidRequest(f"Invalid 'endpoint': {endpoint!r}; this server batches {list(offline.ENDPOINTS)}.",
                             param="endpoint")
    if body.get("completion_window") != "24h":
        raise InvalidRequest("Invalid 'completion_window': only '24h' is supported.", param="completion_window")
    metadata = check_metadata(body.get("metadata"))
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str):
        raise InvalidRequest("Missing required parameter: 'input_file_id'.", param="input_file_id")
    record = files.get_file(session, project_id, file_id)
    if record.purpose != "batch":
        raise InvalidRequest(f"File '{file_id}' has purpose '{record.purpose}'; a batch's input file needs "
                             "purpose 'batch'.", param="input_file_id")
    batch_id = new_id("batch_")
    rows: list[BatchRequestRow] = []
    seen: set[str] = set()
    with open(files.file_path(rt.store, record), encoding="utf-8-sig", errors="replace") as fh:
        for number, text in enumerate(fh, 1):
            if text.strip():
                rows.append(_parse_line(text, number, endpoint, seen))
            if len(rows) > MAX_LINES:
                raise InvalidRequest(f"A batch holds at most {MAX_LINES} requests.", param="input_file_id")
    if not rows:
        raise InvalidRequest(f"File '{file_id}' has no request lines.", param="input_file_id")
    models = {json.loads(r.body).get("model") for r in rows if r.body}
    created = now_s()
    batch = BatchRow(id=batch_id, project_id=project_id, endpoint=endpoint, input_file_id=file_id,
                     completion_window="24h", status="validating", metadata_json=dumps(metadata),
                     model=next(iter(models)) if len(models) == 1 else None, created_at=created,
                     expires_at=created + WINDOW_S)
    session.add(batch)
    session.flush()
    for row in rows:
        row.batch_id = batch_id
    session.add_all(rows)
    session.flush()
    return batch_object(session, batch)


def get_batch(session: Session, project_id: str, batch_id: str) -> BatchRow:
    row = session.get(BatchRow, batch_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
    return row


def retrieve_batch(session: Session, project_id: str, batch_id: str) -> dict:
    return batch_object(session, get_batch(session, project_id, batch_id))


def list_batches(session: Session, project_id: str, *, limit: int, after: str | None) -> dict:
    stmt = select(BatchRow).where(BatchRow.project_id == project_id)
    return paginate(session, stmt, BatchRow.id, limit=check_limit(limit, 100), order="desc", after=after,
                    serialize=lambda r: batch_object(session, r))


def cancel_batch(session: Session, project_id: str, batch_id: str) -> dict:
    row = get_batch(session, project_id, batch_id)
    if row.status in ("completed", "failed", "expired"):
        raise Conflict(f"Batch '{batch_id}' is already {row.status}; it cannot be cancelled.")
    if row.status not in ("cancelling", "cancelled"):
        row.status, row.cancelling_at = "cancelling", now_s()  # the runner finalises with what finished
        session.flush()
    return batch_object(session, row)


def unfinished_batches(session: Session, *, available_to: str | None = None) -> list[str]:
    stmt = select(BatchRow.id).where(BatchRow.status.in_(UNFINISHED))
    if available_to is not None:
        stmt = stmt.where(leases.available(BatchRow, available_to))
    return list(session.scalars(stmt.order_by(BatchRow.id)))


# ---------------------------------------------------------------------------------------- running


def _start(rt: Runtime, batch_id: str):
    with rt.db.session() as session:
        batch = session.get(BatchRow, batch_id)
        if batch is None or batch.status not in UNFINISHED:
            return None
        if batch.status == "validating":  # conditional: a cancel committed meanwhile wins
            session.execute(update(BatchRow).where(BatchRow.id == batch_id, BatchRow.status == "validating")
                            .values(status="in_progress", in_progress_at=now_s()))
            session.refresh(batch)
        pending = [(r.id, r.custom_id, json.loads(r.body)) for r in session.scalars(
            select(BatchRequestRow).where(BatchRequestRow.batch_id == batch_id, BatchRequestRow.status == "pending")
            .order_by(BatchRequestRow.line))]
        return batch.project_id, batch.endpoint, batch.status, pending


def _status(rt: Runtime, batch_id: str) -> str | None:
    with rt.db.session() as session:
        batch = session.get(BatchRow, batch_id)
        return None if batch is None else batch.status


def _save(rt: Runtime, request_id: str, status: str, output: str, usage: dict) -> None:
    # conditional: a line answered already (by a server that held the batch before) stays as it is
    with rt.db.session() as session:
        session.execute(update(BatchRequestRow).where(BatchRequestRow.id == request_id,
                                                      BatchRequestRow.status == "pending")
                        .values(status=status, output=output, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                                completion_tokens=int(usage.get("completion_tokens") or 0)))


async def _one(rt: Runtime, project_id: str, endpoint: str, request_id: str, custom_id: str, body: dict) -> None:
    try:
        answer = await offline.call(rt, project_id, endpoint, body)
    except TuneforgeError as exc:
        output = json.dumps({"id": request_id, "custom_id": custom_id, "error": None, "response": {
            "status_code": exc.status_code, "request_id": request_id, "body": {"error": exc.to_dict()}}})
        await asyncio.to_thread(_save, rt, request_id, "failed", output, {})
        return
    output = json.dumps({"id": request_id, "custom_id": custom_id, "error": None,
                         "response": {"status_code": 200, "request_id": request_id, "body": answer}})
    await asyncio.to_thread(_save, rt, request_id, "completed", output, answer.get("usage") or {})


def _finalize(rt: Runtime, batch_id: str) -> None:
    """Write the output and error files from the finished lines, in input order; a pending line (the
    batch was cancelled) is in neither."""
    from tuneforge.files import service as files

    with rt.db.session() as session:
        batch = session.get(BatchRow, batch_id)
        if batch is None or batch.status not in ("in_progress", "cancelling", "finalizing"):
            return
        if batch.status == "in_progress":
            session.execute(update(BatchRow).where(BatchRow.id == batch_id, BatchRow.status == "in_progress")
                            .values(status="finalizing", finalizing_at=now_s()))
            session.refresh(batch)
        cancelled = batch.status == "cancelling"
        rows = session.scalars(select(BatchRequestRow).where(BatchRequestRow.batch_id == batch_id)
                               .order_by(BatchRequestRow.line)).all()
        for status, attr, name in (("completed", "output_file_id", "output"), ("failed", "error_file_id", "error")):
            lines = [r.output for r in rows if r.status == status]
            if lines:
                record = files.create_file_from_bytes(
                    session, rt.store, project_id=batch.project_id, data=("\n".join(lines) + "\n").encode(),
                    filename=f"{batch_id}_{name}.jsonl", purpose="batch_output")
                setattr(batch, attr, record.id)
        if cancelled:
            batch.status, batch.cancelled_at = "cancelled", now_s()
        else:
            batch.status, batch.completed_at = "completed", now_s()


async def process_batch(rt: Runtime, batch_id: str, stopping: Callable[[], bool]) -> None:
    started = await asyncio.to_thread(_start, rt, batch_id)
    if started is None:
        return
    project_id, endpoint, status, pending = started
    if status in ("in_progress", "validating"):
        semaphore = asyncio.Semaphore(rt.settings.evals_concurrency)
        stopped = False

        async def guarded(request_id: str, custom_id: str, body: dict) -> None:
            nonlocal stopped
            async with semaphore:
                if stopped or stopping() or await asyncio.to_thread(_status, rt, batch_id) != "in_progress":
                    stopped = True
                    return
                await _one(rt, project_id, endpoint, request_id, custom_id, body)

        await asyncio.gather(*(guarded(*p) for p in pending))
        if stopping():
            return  # shutting down: the pending lines run after a restart
    await asyncio.to_thread(_finalize, rt, batch_id)
