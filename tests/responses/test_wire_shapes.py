"""The raw JSON of responses, stream events and conversations validates against the official SDK's own
pydantic types (strict validation: the SDK itself only constructs, so a missing field would pass there)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from openai.types.conversations import Conversation, ConversationItemList
from openai.types.responses import Response, ResponseItemList, ResponseStreamEvent
from pydantic import TypeAdapter

M = "tiny-chat"


@pytest.fixture
def http(client, server):
    with httpx.Client(base_url=server.base_url, headers={"authorization": "Bearer sk-test"}, timeout=120) as h:
        yield h


def test_response_and_items_validate(http):
    body = {"model": M, "input": [{"role": "user", "content": "hi"}], "max_output_tokens": 3,
            "include": ["message.output_text.logprobs"], "top_logprobs": 1, "metadata": {"k": "v"}}
    created = http.post("/responses", json=body)
    assert created.status_code == 200, created.text
    Response.model_validate(created.json(), strict=False)
    rid = created.json()["id"]
    Response.model_validate(http.get(f"/responses/{rid}").json())
    ResponseItemList.model_validate(http.get(f"/responses/{rid}/input_items").json())
    background = http.post("/responses", json={**body, "background": True}).json()
    assert background["status"] == "queued"
    Response.model_validate(background)
    deleted = http.delete(f"/responses/{rid}").json()
    assert deleted == {"id": rid, "object": "response.deleted", "deleted": True}


def test_every_stream_event_validates(http):
    store = None
    adapter = TypeAdapter(ResponseStreamEvent)
    names = []
    # temperature 0: the tiny model never stops by itself then, so the stream always ends incomplete (sampled
    # at the default temperature it sometimes drew the end token within three tokens and ended completed)
    with http.stream("POST", "/responses", json={"model": M, "input": "hi", "max_output_tokens": 3,
                                                 "temperature": 0, "stream": True}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event_name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event_name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["type"] == event_name  # the SSE event name is the event's type
                adapter.validate_python(data)
                names.append(event_name)
                store = data
    assert store["type"] == "response.incomplete" and len(names) >= 9


def test_conversation_objects_validate(http):
    conv = http.post("/conversations", json={"items": [{"role": "user", "content": "x"}], "metadata": {"a": "b"}})
    Conversation.model_validate(conv.json())
    ConversationItemList.model_validate(http.get(f"/conversations/{conv.json()['id']}/items").json())
    missing = http.get("/conversations/conv_nope")
    assert missing.status_code == 404 and set(missing.json()["error"]) == {"message", "type", "param", "code"}


def test_a_restart_fails_unfinished_background_responses_without_a_stored_request(settings, live_server,
                                                                                    tiny_model_dir):
    """Rows from before requests were stored (migration 0012) cannot be run again: they fail, saying why."""
    from tuneforge.db.models import ResponseRow
    from tuneforge.db.session import Database
    from tuneforge.projects import DEFAULT_PROJECT, get_or_create_project

    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as session:
        project = get_or_create_project(session, DEFAULT_PROJECT)
        session.add(ResponseRow(id="resp_left", project_id=project.id, status="in_progress", model=M,
                                stored=True, background=True))
        session.commit()
    db.dispose()
    with live_server(settings) as srv:
        got = httpx.get(f"{srv.base_url}/responses/resp_left", headers={"authorization": "Bearer sk-test"}).json()
    assert got["status"] == "failed" and "cannot run it again" in got["error"]["message"]


def test_a_clean_restart_hands_unfinished_background_responses_over(settings, live_server, tiny_model_dir):
    """A server stopping cleanly queues its unfinished background responses again, unowned; the next server
    (here: the same one restarted) runs them from the start."""
    import openai

    from tuneforge.db.models import ResponseRow
    from tuneforge.db.session import Database

    with live_server(settings) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0)
        client.post("/models", body={"id": M, "path": str(tiny_model_dir)}, cast_to=openai.types.Model)
        created = client.responses.create(model=M, input="Tell me everything.", background=True,
                                          max_output_tokens=300, temperature=0)
        deadline = time.time() + 120
        while client.responses.retrieve(created.id).status == "queued" and time.time() < deadline:
            time.sleep(0.05)
        assert client.responses.retrieve(created.id).status == "in_progress"
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as session:
            row = session.get(ResponseRow, created.id)
            assert (row.status, row.worker_id, row.output) == ("queued", None, "[]")  # handed over, nothing kept
    finally:
        db.dispose()
    with live_server(settings) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test", max_retries=0)
        deadline = time.time() + 120
        while (done := client.responses.retrieve(created.id)).status in ("queued", "in_progress"):
            assert time.time() < deadline, "not finished after the restart"
            time.sleep(0.1)
    assert done.status == "incomplete" and done.error is None and done.usage.output_tokens == 300
    assert done.output_text
