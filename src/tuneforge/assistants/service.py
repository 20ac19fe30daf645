"""Assistants, threads and messages: create, read, update, delete. No FastAPI here."""

from __future__ import annotations

import json

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tuneforge.api.pagination import check_limit, paginate
from tuneforge.assistants.objects import (
    assistant_object,
    check_response_format,
    check_sampling,
    check_tool_resources,
    check_tools,
    content_blocks,
    message_object,
    thread_object,
)
from tuneforge.db.models import AssistantRow, MessageRow, RunRow, RunStepRow, ThreadRow, now_s
from tuneforge.errors import Conflict, InvalidRequest, NotFound
from tuneforge.ids import new_id
from tuneforge.retrieval.meta import check_metadata, dumps
from tuneforge.retrieval.search import get_store

ACTIVE_RUN = ("queued", "in_progress", "cancelling", "requires_action")


def _resources(session: Session, ingestor, project_id: str, value, param: str = "tool_resources") -> dict | None:
    """Validate tool resources; ``file_search.vector_stores`` creates the stores inline."""
    if isinstance(value, dict) and isinstance(value.get("file_search"), dict) and \
            value["file_search"].get("vector_stores"):
        from tuneforge.api.v1.vector_stores import service as vs_service

        inline = value["file_search"]["vector_stores"]
        if not isinstance(inline, list) or len(inline) > 1:
            raise InvalidRequest("file_search.vector_stores holds at most one store.",
                                 param=f"{param}.file_search.vector_stores")
        ids = list(value["file_search"].get("vector_store_ids") or [])
        for spec in inline:
            spec = spec if isinstance(spec, dict) else {}
            ids.append(vs_service.create_store(session, ingestor, project_id, {
                "file_ids": spec.get("file_ids") or [], "chunking_strategy": spec.get("chunking_strategy"),
                "metadata": spec.get("metadata")})["id"])
        value = {**value, "file_search": {"vector_store_ids": ids}}
    resources = check_tool_resources(value, param)
    for sid in ((resources or {}).get("file_search") or {}).get("vector_store_ids", []):
        get_store(session, project_id, sid)  # another project's store is "not found"
    return resources


def _check_model(state, session: Session, project_id: str, model) -> str:
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    from tuneforge import catalog

    catalog.resolve(session, state.registry, state.settings, model, project_id)  # 404 model_not_found
    return model


# ---------------------------------------------------------------- assistants

def create_assistant(state, session: Session, ingestor, project_id: str, body: dict) -> dict:
    temperature, top_p = check_sampling(body)
    row = AssistantRow(id=new_id("asst_"), project_id=project_id,
                       model=_check_model(state, session, project_id, body.get("model")),
                       name=body.get("name"), description=body.get("description"),
                       instructions=body.get("instructions"), tools=json.dumps(check_tools(body.get("tools"))),
                       tool_resources=dumps(_resources(session, ingestor, project_id, body.get("tool_resources"))),
                       metadata_json=dumps(check_metadata(body.get("metadata"))), temperature=temperature,
                       top_p=top_p, response_format=dumps(check_response_format(body.get("response_format"))))
    session.add(row)
    session.flush()
    return assistant_object(row)


def get_assistant(session: Session, project_id: str, assistant_id: str) -> AssistantRow:
    row = session.get(AssistantRow, assistant_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No assistant found with id '{assistant_id}'.", param="assistant_id")
    return row


def list_assistants(session: Session, project_id: str, **page) -> dict:
    check_limit(page["limit"], 100)
    stmt = select(AssistantRow).where(AssistantRow.project_id == project_id)
    return paginate(session, stmt, AssistantRow.id, serialize=assistant_object, **page)


def modify_assistant(state, session: Session, ingestor, project_id: str, assistant_id: str, body: dict) -> dict:
    row = get_assistant(session, project_id, assistant_id)
    if "model" in body:
        row.model = _check_model(state, session, project_id, body["model"])
    for field in ("name", "description", "instructions"):
        if field in body:
            setattr(row, field, body[field])
    if "tools" in body:
        row.tools = json.dumps(check_tools(body["tools"]))
    if "tool_resources" in body:
        row.tool_resources = dumps(_resources(session, ingestor, project_id, body["tool_resources"]))
    if "metadata" in body:
        row.metadata_json = dumps(check_metadata(body["metadata"]))
    if "temperature" in body or "top_p" in body:
        temperature, top_p = check_sampling(body)
        if "temperature" in body:
            row.temperature = temperature
        if "top_p" in body:
            row.top_p = top_p
    if "response_format" in body:
        row.response_format = dumps(check_response_format(body["response_format"]))
    session.flush()
    return assistant_object(row)


def delete_assistant(session: Session, project_id: str, assistant_id: str) -> dict:
    session.delete(get_assistant(session, project_id, assistant_id))
    return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}


# ---------------------------------------------------------------- threads

def _add_message(session: Session, thread: ThreadRow, body: dict, param: str = "") -> MessageRow:
    role = body.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequest("A message's role must be 'user' or 'assistant'.", param=f"{param}role")
    attachments = body.get("attachments")
    if attachments is not None and not isinstance(attachments, list):
        raise InvalidRequest("'attachments' must be a list.", param=f"{param}attachments")
    row = MessageRow(id=new_id("msg_"), thread_id=thread.id, project_id=thread.project_id, role=role,
                     content=json.dumps(content_blocks(body.get("content"), f"{param}content"), ensure_ascii=False),
                     attachments=dumps(attachments), status="completed", completed_at=now_s(),
                     metadata_json=dumps(check_metadata(body.get("metadata"), f"{param}metadata")))
    session.add(row)
    return row


def create_thread(session: Session, ingestor, project_id: str, body: dict) -> ThreadRow:
    row = ThreadRow(id=new_id("thread_"), project_id=project_id,
                    metadata_json=dumps(check_metadata(body.get("metadata"))),
                    tool_resources=dumps(_resources(session, ingestor, project_id, body.get("tool_resources"))))
    session.add(row)
    session.flush()
    messages = body.get("messages") or []
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be a list.", param="messages")
    for i, message in enumerate(messages):
        _add_message(session, row, message if isinstance(message, dict) else {}, f"messages[{i}].")
        session.flush()
    return row


def get_thread(session: Session, project_id: str, thread_id: str) -> ThreadRow:
    row = session.get(ThreadRow, thread_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No thread found with id '{thread_id}'.", param="thread_id")
    return row


def modify_thread(session: Session, ingestor, project_id: str, thread_id: str, body: dict) -> dict:
    row = get_thread(session, project_id, thread_id)
    if "metadata" in body:
        row.metadata_json = dumps(check_metadata(body["metadata"]))
    if "tool_resources" in body:
        row.tool_resources = dumps(_resources(session, ingestor, project_id, body["tool_resources"]))
    session.flush()
    return thread_object(row)


def delete_thread(session: Session, project_id: str, thread_id: str) -> dict:
    row = get_thread(session, project_id, thread_id)
    run_ids = select(RunRow.id).where(RunRow.thread_id == row.id)
    session.execute(delete(RunStepRow).where(RunStepRow.run_id.in_(run_ids)))
    session.execute(delete(RunRow).where(RunRow.thread_id == row.id))
    session.execute(delete(MessageRow).where(MessageRow.thread_id == row.id))
    session.delete(row)
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}


def active_run(session: Session, thread_id: str) -> RunRow | None:
    return session.scalar(select(RunRow).where(RunRow.thread_id == thread_id, RunRow.status.in_(ACTIVE_RUN)))


# ---------------------------------------------------------------- messages

def create_message(session: Session, project_id: str, thread_id: str, body: dict) -> dict:
    thread = get_thread(session, project_id, thread_id)
    run = active_run(session, thread.id)
    if run is not None:
        raise Conflict(f"Can't add messages to {thread.id} while a run {run.id} is active.", code=None)
    row = _add_message(session, thread, body)
    session.flush()
    return message_object(row)


def get_message(session: Session, project_id: str, thread_id: str, message_id: str) -> MessageRow:
    get_thread(session, project_id, thread_id)
    row = session.get(MessageRow, message_id)
    if row is None or row.thread_id != thread_id:
        raise NotFound(f"No message found with id '{message_id}'.", param="message_id")
    return row


def list_messages(session: Session, project_id: str, thread_id: str, run_id: str | None = None, **page) -> dict:
    check_limit(page["limit"], 100)
    get_thread(session, project_id, thread_id)
    stmt = select(MessageRow).where(MessageRow.thread_id == thread_id)
    if run_id:
        stmt = stmt.where(MessageRow.run_id == run_id)
    return paginate(session, stmt, MessageRow.id, serialize=message_object, **page)


def modify_message(session: Session, project_id: str, thread_id: str, message_id: str, body: dict) -> dict:
    row = get_message(session, project_id, thread_id, message_id)
    if "metadata" in body:
        row.metadata_json = dumps(check_metadata(body["metadata"]))
    session.flush()
    return message_object(row)


def delete_message(session: Session, project_id: str, thread_id: str, message_id: str) -> dict:
    session.delete(get_message(session, project_id, thread_id, message_id))
    return {"id": message_id, "object": "thread.message.deleted", "deleted": True}
