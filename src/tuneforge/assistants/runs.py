"""Runs and run steps: creation (with thread creation for ``create_and_run``), reads, cancel.
Execution is in :mod:`tuneforge.assistants.executor`. No FastAPI here."""

from __future__ import annotations

import json
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.assistants import functions, service
from tuneforge.assistants.masks import get_mask
from tuneforge.assistants.objects import (
    check_response_format,
    check_sampling,
    check_tools,
    run_object,
    step_object,
)
from tuneforge.db.models import RunRow, RunStepRow, ThreadRow, now_s
from tuneforge.db.pagination import check_limit, paginate
from tuneforge.errors import Conflict, InvalidRequest, NotFound
from tuneforge.ids import new_id
from tuneforge.retrieval.meta import check_metadata, dumps, loads

RUN_TTL_S = 600  # OpenAI: a run not finished 10 minutes after creation expires
TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")
STEP_INCLUDE = "step_details.tool_calls[*].file_search.results[*].content"


def _positive(body: dict, key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
        raise InvalidRequest(f"'{key}' must be an integer of at least {minimum}.", param=key)
    return value


def _tool_choice(value):
    if value is None or value in ("none", "auto", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "file_search":
        return {"type": "file_search"}
    if isinstance(value, dict) and value.get("type") == "function":
        name = (value.get("function") or {}).get("name") if isinstance(value.get("function"), dict) else None
        if not isinstance(name, str):
            raise InvalidRequest("tool_choice {'type': 'function'} needs 'function': {'name': ...}.",
                                 param="tool_choice.function.name")
        return {"type": "function", "function": {"name": name}}
    raise InvalidRequest("tool_choice must be 'none', 'auto', 'required', {'type': 'file_search'} or "
                         "{'type': 'function', 'function': {'name': ...}}.",
                         param="tool_choice")


def _truncation(value):
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("auto", "last_messages"):
        raise InvalidRequest("truncation_strategy.type must be 'auto' or 'last_messages'.",
                             param="truncation_strategy")
    n = value.get("last_messages")
    if value["type"] == "last_messages" and (not isinstance(n, int) or n < 1):
        raise InvalidRequest("truncation_strategy.last_messages must be a positive integer.",
                             param="truncation_strategy.last_messages")
    return {"type": value["type"], "last_messages": n}


def create_run(state, session: Session, project_id: str, thread: ThreadRow, body: dict) -> RunRow:
    """Validate and record a queued run; the caller commits and submits it to the executor."""
    assistant_id = body.get("assistant_id")
    if not assistant_id:
        raise InvalidRequest("Missing required parameter: 'assistant_id'.", param="assistant_id")
    assistant = service.get_assistant(session, project_id, assistant_id)
    active = service.active_run(session, thread.id)
    if active is not None:
        raise Conflict(f"Thread {thread.id} already has an active run {active.id}.", code=None)
    temperature, top_p = check_sampling(body)
    model = service._check_model(state, session, project_id, body.get("model") or assistant.model)
    mask = body.get("mask") or loads(thread.metadata_json, {}).get("mask") or \
        loads(assistant.metadata_json, {}).get("mask")
    mask_id = get_mask(session, project_id, mask).id if mask else None
    tools = check_tools(body["tools"]) if body.get("tools") is not None else json.loads(assistant.tools)
    choice = _tool_choice(body.get("tool_choice"))
    if isinstance(choice, dict):  # a forced tool must be one the run has
        kind = choice["type"]
        name = (choice.get("function") or {}).get("name") if kind == "function" else None
        if not any(t["type"] == kind and (name is None or t["function"]["name"] == name) for t in tools):
            raise InvalidRequest(f"tool_choice names a {kind} tool{f' {name!r}' if name else ''} that is not in "
                                 "the run's tools.", param="tool_choice")
    for i, message in enumerate(body.get("additional_messages") or []):
        service._add_message(session, thread, message if isinstance(message, dict) else {},
                             f"additional_messages[{i}].")
    now = now_s()
    # reserved by this server's executor (a lease it renews): another server sharing the database takes it
    # only if this one dies before running it
    run = RunRow(id=new_id("run_"), thread_id=thread.id, project_id=project_id, assistant_id=assistant.id,
                 created_at=now, status="queued", model=model, worker_id=state.runs.id,
                 lease_expires_at=time.time() + state.runs.lease_s,
                 instructions=body["instructions"] if body.get("instructions") is not None else assistant.instructions,
                 additional_instructions=body.get("additional_instructions"), tools=json.dumps(tools),
                 mask_id=mask_id, expires_at=now + RUN_TTL_S,
                 temperature=temperature if temperature is not None else assistant.temperature,
                 top_p=top_p if top_p is not None else assistant.top_p,
                 max_prompt_tokens=_positive(body, "max_prompt_tokens", 256),
                 max_completion_tokens=_positive(body, "max_completion_tokens", 1),
                 truncation_strategy=dumps(_truncation(body.get("truncation_strategy"))),
                 tool_choice=dumps(choice),
                 parallel_tool_calls=bool(body.get("parallel_tool_calls", True)),
                 response_format=dumps(check_response_format(body.get("response_format"))) or assistant.response_format,
                 metadata_json=dumps(check_metadata(body.get("metadata"))))
    session.add(run)
    session.flush()
    return run


def create_thread_and_run(state, session: Session, ingestor, project_id: str, body: dict) -> tuple[ThreadRow, RunRow]:
    thread_body = dict(body.get("thread") or {})
    if body.get("tool_resources") is not None and thread_body.get("tool_resources") is None:
        thread_body["tool_resources"] = body["tool_resources"]
    thread = service.create_thread(session, ingestor, project_id, thread_body)
    return thread, create_run(state, session, project_id, thread, body)


def get_run(session: Session, project_id: str, thread_id: str, run_id: str) -> RunRow:
    service.get_thread(session, project_id, thread_id)
    row = session.get(RunRow, run_id)
    if row is None or row.thread_id != thread_id:
        raise NotFound(f"No run found with id '{run_id}'.", param="run_id")
    return row


def list_runs(session: Session, project_id: str, thread_id: str, **page) -> dict:
    check_limit(page["limit"], 100)
    service.get_thread(session, project_id, thread_id)
    return paginate(session, select(RunRow).where(RunRow.thread_id == thread_id), RunRow.id,
                    serialize=run_object, **page)


def modify_run(session: Session, project_id: str, thread_id: str, run_id: str, body: dict) -> dict:
    row = get_run(session, project_id, thread_id, run_id)
    if "metadata" in body:
        row.metadata_json = dumps(check_metadata(body["metadata"]))
    session.flush()
    return run_object(row)


def cancel_run(session: Session, project_id: str, thread_id: str, run_id: str) -> RunRow:
    """A queued run is cancelled at once; a running one becomes ``cancelling`` until the executor
    stops it (between tokens)."""
    row = get_run(session, project_id, thread_id, run_id)
    if row.status == "queued":
        row.status, row.cancelled_at = "cancelled", now_s()
    elif row.status == "in_progress":
        row.status, row.control = "cancelling", "cancel"
    elif row.status == "requires_action":  # no worker holds it: cancelled at once
        functions.end_waiting(session, row, "cancelled")
    elif row.status != "cancelling":
        raise InvalidRequest(f"Cannot cancel run with status '{row.status}'.", param="run_id")
    session.commit()
    return row


def submit_tool_outputs(session: Session, project_id: str, thread_id: str, run_id: str, body: dict) -> RunRow:
    """Outputs for every call the run waits on; the run is queued again (the caller submits it)."""
    row = get_run(session, project_id, thread_id, run_id)
    outputs = body.get("tool_outputs")
    if not isinstance(outputs, list):
        raise InvalidRequest("'tool_outputs' must be a list.", param="tool_outputs")
    functions.submit_outputs(session, row, outputs)
    session.commit()
    return row


def list_steps(session: Session, project_id: str, thread_id: str, run_id: str, include: list[str] | None,
               **page) -> dict:
    check_limit(page["limit"], 100)
    get_run(session, project_id, thread_id, run_id)
    with_content = STEP_INCLUDE in (include or [])
    return paginate(session, select(RunStepRow).where(RunStepRow.run_id == run_id), RunStepRow.id,
                    serialize=lambda r: step_object(r, include_content=with_content), **page)


def get_step(session: Session, project_id: str, thread_id: str, run_id: str, step_id: str,
             include: list[str] | None) -> dict:
    get_run(session, project_id, thread_id, run_id)
    row = session.get(RunStepRow, step_id)
    if row is None or row.run_id != run_id:
        raise NotFound(f"No run step found with id '{step_id}'.", param="step_id")
    return step_object(row, include_content=STEP_INCLUDE in (include or []))
