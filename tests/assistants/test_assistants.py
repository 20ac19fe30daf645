"""Assistants, threads, messages, runs and steps through the SDK, on the tiny random model (its
words are noise; these tests check the lifecycle, retrieval, citations, events and cancellation)."""

from __future__ import annotations

import time

import openai
import pytest
from kbhelpers import REFUND, WARRANTY, upload, wait_store

INCLUDE = ["step_details.tool_calls[*].file_search.results[*].content"]


@pytest.fixture
def setup(tiny_client):
    c = tiny_client
    refund, warranty = upload(c, "refund.md", REFUND), upload(c, "warranty.md", WARRANTY)
    store = c.vector_stores.create(name="kb", file_ids=[refund, warranty])
    wait_store(c, store.id)
    assistant = c.beta.assistants.create(model="tiny-chat", name="Helper", instructions="Answer from the sources.",
                                         tools=[{"type": "file_search"}], metadata={"team": "support"},
                                         tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    return {"c": c, "store": store.id, "refund": refund, "warranty": warranty, "assistant": assistant}


def test_assistant_crud_and_validation(setup):
    c, a = setup["c"], setup["assistant"]
    assert a.id.startswith("asst_") and a.tools[0].type == "file_search"
    assert a.tool_resources.file_search.vector_store_ids == [setup["store"]]
    got = c.beta.assistants.retrieve(a.id)
    assert (got.name, got.instructions, got.metadata) == ("Helper", "Answer from the sources.", {"team": "support"})
    updated = c.beta.assistants.update(a.id, temperature=0.2, top_p=0.9, name="Renamed")
    assert (updated.temperature, updated.top_p, updated.name) == (0.2, 0.9, "Renamed")
    assert a.id in [x.id for x in c.beta.assistants.list(limit=5)]
    with pytest.raises(openai.NotFoundError) as err:
        c.beta.assistants.create(model="no-such-model")
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        c.beta.assistants.create(model="tiny-chat", tool_resources={"file_search": {"vector_store_ids": ["vs_nope"]}})
    with pytest.raises(openai.BadRequestError):
        c.beta.assistants.create(model="tiny-chat", tools=[{"type": "code_interpreter"}])
    with pytest.raises(openai.BadRequestError):
        c.beta.assistants.create(model="tiny-chat", temperature=3)
    assert c.beta.assistants.delete(a.id).deleted
    with pytest.raises(openai.NotFoundError):
        c.beta.assistants.retrieve(a.id)


def test_threads_and_messages_crud(setup):
    c = setup["c"]
    t = c.beta.threads.create(messages=[{"role": "user", "content": "hello"},
                                        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}],
                              metadata={"k": "v"})
    assert t.id.startswith("thread_") and t.metadata == {"k": "v"}
    m = c.beta.threads.messages.create(thread_id=t.id, role="user", content="third", metadata={"n": "3"})
    assert m.id.startswith("msg_") and m.status == "completed" and m.content[0].text.value == "third"
    listed = c.beta.threads.messages.list(thread_id=t.id, order="asc")
    assert [x.content[0].text.value for x in listed] == ["hello", "hi", "third"]
    assert c.beta.threads.messages.update(message_id=m.id, thread_id=t.id, metadata={"n": "4"}).metadata == {"n": "4"}
    assert c.beta.threads.messages.delete(message_id=m.id, thread_id=t.id).deleted
    assert c.beta.threads.update(t.id, metadata={"k": "w"}).metadata == {"k": "w"}
    with pytest.raises(openai.BadRequestError):
        c.beta.threads.messages.create(thread_id=t.id, role="system", content="no")
    assert c.beta.threads.delete(t.id).deleted
    with pytest.raises(openai.NotFoundError):
        c.beta.threads.messages.list(thread_id=t.id)


def test_run_searches_cites_and_completes(setup):
    c, a = setup["c"], setup["assistant"]
    t = c.beta.threads.create(messages=[{"role": "user", "content": "Within how many days can I get a refund?"}])
    run = c.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, temperature=0,
                                              max_completion_tokens=8, poll_interval_ms=50)
    assert run.id.startswith("run_") and run.status in ("completed", "incomplete"), run.last_error
    assert run.usage.prompt_tokens > 0 and run.usage.completion_tokens > 0
    assert run.started_at and (run.completed_at or run.status == "incomplete")
    steps = list(c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id, order="asc", include=INCLUDE))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert all(s.id.startswith("step_") and s.status == "completed" for s in steps)
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search"
    top = call.file_search.results[0]
    assert top.file_id == setup["refund"] and "45 days" in top.content[0].text  # the chunk holding the answer
    plain = c.beta.threads.runs.steps.retrieve(step_id=steps[0].id, thread_id=t.id, run_id=run.id)
    assert plain.step_details.tool_calls[0].file_search.results[0].content is None  # only with include[]
    message = c.beta.threads.messages.retrieve(steps[1].step_details.message_creation.message_id, thread_id=t.id)
    assert message.role == "assistant" and message.run_id == run.id and message.assistant_id == a.id
    text = message.content[0].text
    citations = [x for x in text.annotations if x.type == "file_citation"]
    assert citations and citations[0].file_citation.file_id == setup["refund"]
    assert text.value[citations[0].start_index:citations[0].end_index] == citations[0].text
    assert [r.id for r in c.beta.threads.runs.list(thread_id=t.id)] == [run.id]


def test_streaming_events_in_order(setup, live_server, settings):
    with live_server(settings) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        assistant = c.beta.assistants.retrieve(setup["assistant"].id)
        events = []
        with c.beta.threads.create_and_run_stream(
                assistant_id=assistant.id, temperature=0, max_completion_tokens=6,
                thread={"messages": [{"role": "user", "content": "电池保修多久？"}]}) as stream:
            for event in stream:
                events.append(event.event)
            final = stream.get_final_run()
            messages = stream.get_final_messages()
    head = ["thread.created", "thread.run.created", "thread.run.queued", "thread.run.in_progress",
            "thread.run.step.created", "thread.run.step.in_progress", "thread.run.step.completed",
            "thread.run.step.created", "thread.run.step.in_progress", "thread.message.created",
            "thread.message.in_progress"]
    assert events[:len(head)] == head
    tail = events[len(head):]
    deltas = tail[:next(i for i, e in enumerate(tail) if e != "thread.message.delta")]
    assert deltas and len(tail) == len(deltas) + 3
    assert events[-3:] in (["thread.message.completed", "thread.run.step.completed", "thread.run.completed"],
                           ["thread.message.incomplete", "thread.run.step.completed", "thread.run.incomplete"])
    assert final.status in ("completed", "incomplete")
    annotations = messages[0].content[0].text.annotations
    assert annotations and annotations[0].file_citation.file_id == setup["warranty"]


def test_cancel_a_running_run(setup):
    c, a = setup["c"], setup["assistant"]
    t = c.beta.threads.create(messages=[{"role": "user", "content": "Tell me everything about refunds."}])
    run = c.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id, temperature=1.0,
                                     max_completion_tokens=4000)
    deadline = time.time() + 60
    while c.beta.threads.runs.retrieve(run.id, thread_id=t.id).status == "queued" and time.time() < deadline:
        time.sleep(0.05)
    with pytest.raises(openai.ConflictError):  # no new messages while a run is active
        c.beta.threads.messages.create(thread_id=t.id, role="user", content="wait")
    cancelling = c.beta.threads.runs.cancel(run.id, thread_id=t.id)
    assert cancelling.status in ("cancelling", "cancelled")
    final = c.beta.threads.runs.poll(run.id, thread_id=t.id, poll_interval_ms=50)
    assert final.status == "cancelled" and final.cancelled_at
    msgs = [m for m in c.beta.threads.messages.list(thread_id=t.id) if m.role == "assistant"]
    assert all(m.status == "incomplete" and m.incomplete_details.reason == "run_cancelled" for m in msgs)
    with pytest.raises(openai.BadRequestError):
        c.beta.threads.runs.cancel(run.id, thread_id=t.id)
    # the thread is usable again
    again = c.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id, max_completion_tokens=2,
                                                poll_interval_ms=50)
    assert again.status in ("completed", "incomplete")


def test_thread_resources_and_tool_choice_none(setup):
    c = setup["c"]
    plain = c.beta.assistants.create(model="tiny-chat", tools=[{"type": "file_search"}])
    t = c.beta.threads.create(messages=[{"role": "user", "content": "refund days?"}],
                              tool_resources={"file_search": {"vector_store_ids": [setup["store"]]}})
    run = c.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=plain.id, max_completion_tokens=2,
                                              poll_interval_ms=50)
    steps = list(c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id, include=INCLUDE))
    assert any(s.type == "tool_calls" for s in steps)  # the thread's store was searched
    c.beta.threads.messages.create(thread_id=t.id, role="user", content="and again?")
    run = c.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=plain.id, tool_choice="none",
                                              max_completion_tokens=2, poll_interval_ms=50)
    assert [s.type for s in c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id)] == ["message_creation"]


def test_a_run_with_an_unknown_model_override_is_rejected(setup):
    c = setup["c"]
    t = c.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        c.beta.threads.runs.create(thread_id=t.id, assistant_id=setup["assistant"].id, model="nope")
    with pytest.raises(openai.NotFoundError):
        c.beta.threads.runs.create(thread_id=t.id, assistant_id="asst_nope")
