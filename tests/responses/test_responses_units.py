"""Fast checks without a server: the event builder's sequences go through the official SDK's own stream
accumulator (the one ``client.responses.stream()`` uses) and validate as its typed events; the
chat-completions shapes Responses hands to the serving layer."""

from __future__ import annotations

import pytest
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from tuneforge.errors import InvalidRequest
from tuneforge.responses import generation
from tuneforge.responses.events import EventBuilder
from tuneforge.responses.items import normalize_input, output_message, to_messages
from tuneforge.responses.params import ResponseCreateRequest, check
from tuneforge.responses.store import response_object, usage_object

ADAPTER = TypeAdapter(ResponseStreamEvent)


def _feed(events: list[dict]):
    from openai import omit

    state = ResponseStreamState(input_tools=omit, text_format=omit)
    out = []
    for raw in events:
        out += state.handle_event(ADAPTER.validate_python(raw))
    return state, out


def test_a_search_a_message_and_a_function_call_accumulate_in_the_sdk_helper():
    b = EventBuilder(response_object(id="resp_1", created_at=1, status="in_progress", model="m", params={},
                                     output=[]))
    events = [b.lifecycle("created"), b.lifecycle("in_progress")]
    events += b.file_search({"id": "fs_1", "type": "file_search_call", "status": "completed", "queries": ["q"],
                             "results": None})
    events += b.message_start("msg_1")
    events += [b.text_delta("Hel"), b.text_delta("lo [1]")]
    message = output_message("Hello [1]", item_id="msg_1", annotations=[
        {"type": "file_citation", "file_id": "file-1", "filename": "a.md", "index": 9}])
    events += b.message_done(message)
    events.append(b.function_call_start({"id": "fc_1", "type": "function_call", "call_id": "call_1",
                                         "name": "get_weather"}))
    events += [b.function_call_arguments('{"city":'), b.function_call_arguments(' "Paris"}')]
    events += b.function_call_done({"id": "fc_1", "type": "function_call", "call_id": "call_1",
                                    "name": "get_weather", "arguments": '{"city": "Paris"}', "status": "completed"})
    b.response.update(status="completed", usage=usage_object(10, 5), completed_at=2)
    events.append(b.lifecycle("completed"))

    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    state, typed = _feed(events)
    deltas = [e for e in typed if e.type == "response.output_text.delta"]
    assert [d.snapshot for d in deltas] == ["Hel", "Hello [1]"]
    args = [e for e in typed if e.type == "response.function_call_arguments.delta"]
    assert args[-1].snapshot == '{"city": "Paris"}'
    final = state._completed_response
    assert [o.type for o in final.output] == ["file_search_call", "message", "function_call"]
    assert final.output_text == "Hello [1]" and final.output[2].arguments == '{"city": "Paris"}'
    assert final.output[1].content[0].annotations[0].file_id == "file-1"


def test_function_tools_and_json_schema_in_chat_completions_shapes():
    tools = generation.chat_tools([{"type": "function", "name": "f", "description": "d", "strict": True,
                                    "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}},
                                   {"type": "file_search", "vector_store_ids": ["vs_1"]}])
    assert tools == [{"type": "function", "function": {
        "name": "f", "description": "d", "strict": True,
        "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]
    assert generation.chat_tool_choice({"type": "function", "name": "f"}) == \
        {"type": "function", "function": {"name": "f"}}
    fmt = generation.chat_response_format({"type": "json_schema", "name": "n", "strict": True,
                                           "schema": {"type": "object"}})
    assert fmt == {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"},
                                                          "strict": True}}
    with pytest.raises(InvalidRequest) as err:
        generation.chat_tools([{"type": "function", "parameters": {}}])
    assert err.value.param == "tools[0].name"


def test_function_items_render_as_chat_tool_messages():
    items = normalize_input([
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    ], resolve_reference=None)
    messages = to_messages(items)
    assert messages[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{}"}}]}
    assert messages[2] == {"role": "tool", "tool_call_id": "c1", "content": "sunny"}


def test_function_tools_with_tool_choice_none_are_accepted():
    body = ResponseCreateRequest(model="m", input="x", tool_choice="none",
                                 tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}])
    check(body)
    extras = generation.chat_extras(body)  # passed on: the chat layer does not offer tools under "none"
    assert extras["tool_choice"] == "none" and extras["tools"][0]["function"]["name"] == "f"


def test_tool_choice_without_a_matching_tool_is_refused_by_name():
    for choice in ("required", {"type": "function", "name": "f"}):
        with pytest.raises(InvalidRequest) as err:
            generation.chat_extras(ResponseCreateRequest(model="m", input="x", tool_choice=choice))
        assert err.value.param == "tool_choice"


def test_chat_parameter_names_in_errors_become_responses_names():
    assert generation.response_param("response_format.json_schema.schema") == "text.format.schema"
    assert generation.response_param("tools.[1].function.parameters") == "tools[1].parameters"
    assert generation.response_param("messages") == "input"
    assert generation.response_param("max_tokens") == "max_output_tokens"
