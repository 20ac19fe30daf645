"""One question to a knowledge base (a vector store), answered by a run with file_search.

The simple API's ``POST /kb/ask`` uses this; it is the server-side twin of ``tuneforge ask``: the same
reusable ``kb:<store name>`` assistant per (store, model), a fresh thread per question, and the answer
with the files it cites.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from tuneforge.assistants import runs, service
from tuneforge.db.models import AssistantRow, FileRecord, VectorStoreRow
from tuneforge.errors import InvalidRequest, NotFound, ServerError, TuneforgeError

KB_ASSISTANT_PREFIX = "kb:"
DEFAULT_INSTRUCTIONS = "You answer questions from the provided documents, briefly and accurately."


def find_store(session, project_id: str, name_or_id: str) -> VectorStoreRow:
    """A vector store by id, or the newest one with that name, in this project."""
    stmt = select(VectorStoreRow).where(VectorStoreRow.project_id == project_id)
    if name_or_id.startswith("vs_"):
        row = session.scalar(stmt.where(VectorStoreRow.id == name_or_id))
    else:
        row = session.scalar(stmt.where(VectorStoreRow.name == name_or_id).order_by(VectorStoreRow.id.desc()))
    if row is None:
        raise NotFound(f"No knowledge base (vector store) named '{name_or_id}'.", param="kb")
    return row


def _kb_assistant(state, session, ingestor, project_id: str, store: VectorStoreRow, model: str) -> str:
    name = KB_ASSISTANT_PREFIX + store.name
    rows = session.scalars(select(AssistantRow).where(AssistantRow.project_id == project_id,
                                                      AssistantRow.name == name, AssistantRow.model == model)).all()
    for row in rows:
        resources = json.loads(row.tool_resources or "{}")
        if (resources.get("file_search") or {}).get("vector_store_ids") == [store.id]:
            return row.id
    created = service.create_assistant(state, session, ingestor, project_id, {
        "name": name, "model": model, "instructions": DEFAULT_INSTRUCTIONS, "tools": [{"type": "file_search"}],
        "tool_resources": {"file_search": {"vector_store_ids": [store.id]}}})
    return created["id"]


def ask(state, project_id: str, *, kb: str, question: str, model: str | None = None,
        max_tokens: int = 256, timeout_s: float = 600) -> dict:

    if not isinstance(question, str) or not question.strip():
        raise InvalidRequest("Missing required parameter: 'text'.", param="text")
    model = model or state.settings.default_model
    ingestor = state.ingestor
    with state.db.session() as session:
        store = find_store(session, project_id, kb)
        assistant_id = _kb_assistant(state, session, ingestor, project_id, store, model)
        thread, run = runs.create_thread_and_run(state, session, ingestor, project_id, {
            "assistant_id": assistant_id, "temperature": 0, "max_completion_tokens": max_tokens,
            "thread": {"messages": [{"role": "user", "content": question}]}})
        thread_id, run_id = thread.id, run.id
    failure = state.runs.submit(run_id).result(timeout=timeout_s)
    if isinstance(failure, TuneforgeError):
        raise failure  # the same status chat completions answer: 502 for an unreachable upstream, 4xx, 503

    with state.db.session() as session:
        run = runs.get_run(session, project_id, thread_id, run_id)
        if run.status not in ("completed", "incomplete"):  # incomplete: cut at max_tokens, still an answer
            error = json.loads(run.last_error) if run.last_error else {}
            raise ServerError(f"The run ended '{run.status}': {error.get('message', 'no details')}")
        page = service.list_messages(session, project_id, thread_id, run_id=run_id, limit=100, order="asc",
                                     after=None, before=None)
        answer, citations = "", []
        for message in page["data"]:
            for part in message["content"]:
                if part.get("type") != "text":
                    continue
                answer += part["text"]["value"]
                for note in part["text"].get("annotations", []):
                    if note.get("type") != "file_citation":
                        continue
                    file_id = note["file_citation"]["file_id"]
                    if any(c["file_id"] == file_id for c in citations):
                        continue
                    record = session.get(FileRecord, file_id)
                    citations.append({"marker": note.get("text"), "file_id": file_id,
                                      "filename": record.filename if record else None})
        status = run.status
    return {"content": answer, "citations": citations, "id": run_id, "thread_id": thread_id, "model": model,
            "kb": store.id, "status": status}
