"""Conversations, background responses and project ownership through the official SDK on a real server."""

from __future__ import annotations

import time

import openai
import pytest

M = "tiny-chat"


def test_conversation_crud_and_items(client):
    conv = client.conversations.create(items=[{"role": "user", "content": "first"},
                                              {"type": "message", "role": "assistant",
                                               "content": [{"type": "output_text", "text": "second"}]}],
                                       metadata={"topic": "demo"})
    assert conv.id.startswith("conv_") and conv.object == "conversation" and conv.metadata == {"topic": "demo"}
    assert client.conversations.retrieve(conv.id).created_at == conv.created_at
    assert client.conversations.update(conv.id, metadata={"topic": "new"}).metadata == {"topic": "new"}

    added = client.conversations.items.create(conv.id, items=[{"role": "user", "content": f"more {i}"}
                                                              for i in range(3)])
    assert [i.content[0].text for i in added.data] == ["more 0", "more 1", "more 2"]
    newest_first = client.conversations.items.list(conv.id, limit=2)
    assert [i.content[0].text for i in newest_first.data] == ["more 2", "more 1"] and newest_first.has_more
    every = [i.content[0].text for i in client.conversations.items.list(conv.id, order="asc", limit=2)]
    assert every == ["first", "second", "more 0", "more 1", "more 2"]

    item = client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    assert item.content[0].text == "more 0" and item.role == "user"
    assert client.conversations.items.delete(added.data[0].id, conversation_id=conv.id).id == conv.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)

    with pytest.raises(openai.BadRequestError) as err:
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": "x"}] * 21)
    assert err.value.param == "items"

    deleted = client.conversations.delete(conv.id)
    assert deleted.deleted and deleted.object == "conversation.deleted"
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)


def test_a_response_in_a_conversation_sees_and_extends_it(client):
    conv = client.conversations.create(items=[{"role": "user", "content": "The code word is PLOVER."}])
    alone = client.responses.input_tokens.count(model=M, input="What is the code word?").input_tokens
    with_conv = client.responses.input_tokens.count(model=M, input="What is the code word?",
                                                    conversation=conv.id).input_tokens
    assert with_conv > alone  # the conversation's items are in the prompt
    r = client.responses.create(model=M, input="What is the code word?", conversation=conv.id,
                                max_output_tokens=5, temperature=0)
    assert r.conversation.id == conv.id and r.usage.input_tokens == with_conv
    items = client.conversations.items.list(conv.id, order="asc").data
    assert [(i.role, i.content[0].text) for i in items] == [
        ("user", "The code word is PLOVER."), ("user", "What is the code word?"), ("assistant", r.output_text)]
    # the next turn sees all three
    r2 = client.responses.create(model=M, input="And again?", conversation=conv.id, max_output_tokens=3)
    assert r2.usage.input_tokens > r.usage.input_tokens + r.usage.output_tokens
    assert len(client.conversations.items.list(conv.id).data) == 5
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=M, input="x", conversation=conv.id, previous_response_id=r.id)
    assert err.value.param == "previous_response_id"


def _wait(client, response_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = client.responses.retrieve(response_id)
        if r.status not in ("queued", "in_progress"):
            return r
        time.sleep(0.1)
    raise AssertionError(f"{response_id} still running")


def test_background_responses_are_pollable_and_cancellable(client):
    r = client.responses.create(model=M, input="Write a long story", background=True, max_output_tokens=16,
                                temperature=0)
    assert r.status == "queued" and r.background is True and r.output == []
    done = _wait(client, r.id)
    assert done.status == "incomplete" and done.usage.output_tokens == 16 and done.output_text
    # the pool has two workers: the third of three long responses waits in the queue, so cancelling it
    # always finds it unfinished
    busy = [client.responses.create(model=M, input="story", background=True, max_output_tokens=400)
            for _ in range(2)]
    queued = client.responses.create(model=M, input="story", background=True, max_output_tokens=400)
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    for b in busy:
        client.responses.cancel(b.id)
    for b in [*busy, queued]:
        assert _wait(client, b.id).status == "cancelled"
    assert client.responses.cancel(queued.id).status == "cancelled"  # idempotent
    foreground = client.responses.create(model=M, input="hi", max_output_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(foreground.id)


def test_other_projects_get_404(client, server, tiny_model_dir):
    from tuneforge.db.session import Database
    from tuneforge.projects import create_key

    # a model both projects may use: registered by the operator (no project), not through the API
    server.app.state.tuneforge.registry.register("tiny-shared", str(tiny_model_dir), None)
    M = "tiny-shared"  # noqa: N806
    db = Database(server.settings.resolved_database_url)
    with db.session() as session:
        key_a, _ = create_key(session, "alpha")
        key_b, _ = create_key(session, "beta")
    db.dispose()
    a = openai.OpenAI(base_url=server.base_url, api_key=key_a, max_retries=0)
    b = openai.OpenAI(base_url=server.base_url, api_key=key_b, max_retries=0)
    conv = a.conversations.create(items=[{"role": "user", "content": "secret"}])
    r = a.responses.create(model=M, input="secret", max_output_tokens=2)
    for call in (lambda: b.responses.retrieve(r.id), lambda: b.responses.delete(r.id),
                 lambda: b.responses.input_items.list(r.id), lambda: b.conversations.retrieve(conv.id),
                 lambda: b.conversations.items.list(conv.id), lambda: b.conversations.delete(conv.id),
                 lambda: b.responses.create(model=M, input="x", previous_response_id=r.id),
                 lambda: b.responses.create(model=M, input="x", conversation=conv.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert a.responses.retrieve(r.id).id == r.id and a.conversations.retrieve(conv.id).id == conv.id
