"""Function tools in Assistants runs through the official SDK against a real uvicorn, on the tiny random
model: with tool_choice required the grammar makes whatever it writes a valid call, so the whole round
trip (requires_action → submit_tool_outputs → the run continues) is checked on real generation."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tuneforge.testing import live_server

# Small schemas: a random model pads every JSON gap with the whitespace the grammar allows, so each
# property costs tokens (and CPU time on a shared machine).
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Lyon"]}},
                   "required": ["city"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string", "enum": ["UTC"]}},
                                       "required": ["zone"], "additionalProperties": False}}}
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}


@pytest.fixture
def client(settings, tiny_model_dir):
    with live_server(settings) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        c.post("/models", body={"id": "tiny-chat", "path": str(tiny_model_dir)}, cast_to=openai.types.Model)
        yield c


def _valid(call) -> dict:
    assert call.type == "function" and call.id.startswith("call_")
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, SCHEMAS[call.function.name]["function"]["parameters"])
    return args


def _thread(c, text="What's the weather in Paris?"):
    return c.beta.threads.create(messages=[{"role": "user", "content": text}])


def test_required_call_then_outputs_complete_the_run(client):
    c = client
    assistant = c.beta.assistants.create(model="tiny-chat", instructions="Use the tools.", tools=[WEATHER, TIME])
    t = _thread(c)
    run = c.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=assistant.id, tool_choice="required",
                                              parallel_tool_calls=False, temperature=0, max_completion_tokens=160,
                                              poll_interval_ms=50)
    assert run.status == "requires_action", run.last_error
    assert run.required_action.type == "submit_tool_outputs" and run.expires_at
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1  # parallel_tool_calls=False
    _valid(calls[0])
    # the step holds the call, its output still null; the run is not claimed while it waits
    steps = list(c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id))
    assert [(s.type, s.status) for s in steps] == [("tool_calls", "in_progress")]
    fn = steps[0].step_details.tool_calls[0]
    assert fn.type == "function" and fn.id == calls[0].id and fn.function.output is None
    assert c.beta.threads.runs.retrieve(thread_id=t.id, run_id=run.id).status == "requires_action"
    with pytest.raises(openai.ConflictError):  # the thread is busy while its run waits
        c.beta.threads.messages.create(thread_id=t.id, role="user", content="more")

    # wrong, missing or duplicate ids are 400s that name the required call
    with pytest.raises(openai.BadRequestError) as err:
        c.beta.threads.runs.submit_tool_outputs(thread_id=t.id, run_id=run.id,
                                                tool_outputs=[{"tool_call_id": "call_nope", "output": "x"}])
    assert calls[0].id in err.value.message and "call_nope" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        c.beta.threads.runs.submit_tool_outputs(thread_id=t.id, run_id=run.id, tool_outputs=[])
    assert calls[0].id in err.value.message

    run = c.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=t.id, run_id=run.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "18C, sunny"}],
        poll_interval_ms=50)
    assert run.status in ("completed", "incomplete"), run.last_error
    assert run.required_action is None and run.usage.completion_tokens <= 160
    steps = list(c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id, order="asc"))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].status == "completed" and steps[0].step_details.tool_calls[0].function.output == "18C, sunny"
    assert steps[0].usage.completion_tokens > 0
    message_id = steps[1].step_details.message_creation.message_id
    messages = list(c.beta.threads.messages.list(thread_id=t.id, order="asc"))
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].id == message_id
    assert messages[1].run_id == run.id
    # outputs can't be submitted twice
    with pytest.raises(openai.BadRequestError):
        c.beta.threads.runs.submit_tool_outputs(thread_id=t.id, run_id=run.id,
                                                tool_outputs=[{"tool_call_id": calls[0].id, "output": "again"}])


def test_named_function_on_the_run_cancel_while_waiting_and_tool_choice_none(client):
    c = client
    assistant = c.beta.assistants.create(model="tiny-chat")  # no tools on the assistant: the run brings them
    t = _thread(c, "What time is it in Tokyo?")
    # checked when the run is created, not when it fails later
    for bad, param in (({"type": "function", "function": {"name": "nope"}}, "tool_choice"),
                       ({"type": "file_search"}, "tool_choice"), ({"type": "function"}, "tool_choice.function.name")):
        with pytest.raises(openai.BadRequestError) as err:
            c.beta.threads.runs.create(thread_id=t.id, assistant_id=assistant.id, tools=[WEATHER], tool_choice=bad)
        assert err.value.body["param"] == param
    with pytest.raises(openai.BadRequestError) as err:
        c.beta.assistants.create(model="tiny-chat", tools=[{"type": "function", "function": {"name": "no spaces"}}])
    assert err.value.body["param"] == "tools[0].function.name"
    run = c.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=assistant.id, tools=[WEATHER, TIME], max_completion_tokens=160,
        parallel_tool_calls=False, temperature=0, tool_choice={"type": "function", "function": {"name": "get_time"}},
        poll_interval_ms=50)
    assert run.status == "requires_action", run.last_error
    assert run.tool_choice.function.name == "get_time" and [x.type for x in run.tools] == ["function", "function"]
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [call.function.name for call in calls] == ["get_time"]
    assert _valid(calls[0]) == {"zone": "UTC"}
    # a waiting run is cancelled at once (no worker holds it), with its pending step
    cancelled = c.beta.threads.runs.cancel(thread_id=t.id, run_id=run.id)
    assert cancelled.status == "cancelled" and cancelled.required_action is None and cancelled.cancelled_at
    steps = list(c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id))
    assert [(s.type, s.status) for s in steps] == [("tool_calls", "cancelled")]
    with pytest.raises(openai.BadRequestError) as err:
        c.beta.threads.runs.submit_tool_outputs(thread_id=t.id, run_id=run.id,
                                                tool_outputs=[{"tool_call_id": calls[0].id, "output": "late"}])
    assert "cancelled" in err.value.message
    # tool_choice none: the functions are not offered, the run answers with a message
    run = c.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=assistant.id, tools=[WEATHER],
                                              tool_choice="none", max_completion_tokens=5, poll_interval_ms=50)
    assert run.status in ("completed", "incomplete"), run.last_error
    steps = list(c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id))
    assert [s.type for s in steps] == ["message_creation"]


def test_streamed_run_stops_at_requires_action_and_submit_streams_the_rest(client):
    c = client
    assistant = c.beta.assistants.create(model="tiny-chat", tools=[WEATHER])
    t = _thread(c)
    with c.beta.threads.runs.stream(thread_id=t.id, assistant_id=assistant.id, tool_choice="required",
                                    temperature=0, max_completion_tokens=160) as stream:
        events = [e.event for e in stream]
        run = stream.current_run
    assert events[:2] == ["thread.run.created", "thread.run.queued"]
    assert events[-3:] == ["thread.run.step.created", "thread.run.step.in_progress", "thread.run.requires_action"]
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    _valid(call)
    with c.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=t.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "rain"}]) as stream:
        events = [e.event for e in stream]
        final = stream.current_run
    assert events[0] == "thread.run.queued" and "thread.run.in_progress" in events
    assert "thread.message.created" in events and events[-1] in ("thread.run.completed", "thread.run.incomplete")
    assert final.status in ("completed", "incomplete")
    steps = list(c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id, order="asc"))
    assert steps[0].step_details.tool_calls[0].function.output == "rain"
