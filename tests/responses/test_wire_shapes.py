"""The raw JSON of responses, stream events and conversations validates against the official SDK's own
pydantic types (strict validation: the SDK itself only constructs, so a missing field would pass there)."""

from __future__ import annotations

import json

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
    with http.stream("POST", "/responses", json={"model": M, "input": "hi", "max_output_tokens": 3,
                                                 "stream": True}) as stream:
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


def test_a_restart_fails_background_responses_it_left_unfinished(settings, live_server, tiny_model_dir):
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
    assert got["status"] == "failed" and "restarted" in got["error"]["message"]
