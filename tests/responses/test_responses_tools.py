"""Function calling and strict structured outputs on /v1/responses, through the official SDK and a real
uvicorn: tiny random-weight model for the shapes (the grammar makes even random weights produce valid calls),
the bundled SmolLM2 for answers a real model writes (20 seeds at temperature 1, a required call, the
``function_call_output`` round trip)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai
import pydantic
import pytest

M = "tiny-chat"
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                          "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                          "required": ["city", "unit"], "additionalProperties": False}, "strict": True}
CITY = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"},
                                         "population": {"type": "integer", "minimum": 0}},
        "required": ["city", "country", "population"], "additionalProperties": False}
CITY_FORMAT = {"format": {"type": "json_schema", "name": "city", "schema": CITY, "strict": True}}


def _calls(response):
    return [item for item in response.output if item.type == "function_call"]


def test_required_tool_choice_gives_a_valid_function_call_item(client):
    r = client.responses.create(model=M, input="Weather in Paris?", tools=[WEATHER], tool_choice="required",
                                parallel_tool_calls=False, max_output_tokens=200, temperature=0)
    calls = _calls(r)
    assert r.status == "completed" and len(calls) == 1 and r.output == calls
    call = calls[0]
    assert call.name == "get_weather" and call.call_id and call.id.startswith("fc_") and call.status == "completed"
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    assert r.tool_choice == "required" and r.tools[0].name == "get_weather"
    stored = client.responses.retrieve(r.id)
    assert _calls(stored)[0].arguments == call.arguments


def test_a_named_function_is_the_one_called(client):
    other = {**WEATHER, "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                                                         "required": ["zone"], "additionalProperties": False}}
    r = client.responses.create(model=M, input="Time?", tools=[WEATHER, other], max_output_tokens=200,
                                tool_choice={"type": "function", "name": "get_time"}, parallel_tool_calls=False)
    assert [c.name for c in _calls(r)] == ["get_time"]
    jsonschema.validate(json.loads(_calls(r)[0].arguments), other["parameters"])


def test_streamed_function_call_events_add_up_to_the_stored_call(client):
    with client.responses.stream(model=M, input="Weather in Paris?", tools=[WEATHER], tool_choice="required",
                                 parallel_tool_calls=False, max_output_tokens=200, temperature=0) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    call = _calls(final)[0]
    assert deltas == call.arguments and json.loads(deltas)
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == call.arguments and done.item_id == call.id
    assert _calls(client.responses.retrieve(final.id))[0].arguments == call.arguments


def test_function_call_output_round_trip_continues(client):
    first = client.responses.create(model=M, input="Weather in Paris?", tools=[WEATHER], tool_choice="required",
                                    parallel_tool_calls=False, max_output_tokens=200)
    call = _calls(first)[0]
    then = client.responses.create(model=M, previous_response_id=first.id, tools=[WEATHER], max_output_tokens=8,
                                   input=[{"type": "function_call_output", "call_id": call.call_id,
                                           "output": '{"temperature_c": 21}'}])
    assert then.status in ("completed", "incomplete") and then.output
    items = client.responses.input_items.list(then.id).data
    assert items[0].type == "function_call_output" and items[0].call_id == call.call_id
    # stateless: the client sends the call and its output back itself
    again = client.responses.create(model=M, tools=[WEATHER], max_output_tokens=8, tool_choice="none", input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert again.output[0].type == "message"


def test_json_schema_text_format_validates(client):
    for _ in range(3):
        r = client.responses.create(model=M, input="Describe Paris as JSON.", text=CITY_FORMAT, temperature=1,
                                    max_output_tokens=120)
        if r.status == "completed":
            jsonschema.validate(json.loads(r.output_text), CITY)
    assert r.text.format.type == "json_schema"

    class City(pydantic.BaseModel):
        city: str
        country: str

    parsed = client.responses.parse(model=M, input="Paris", text_format=City, max_output_tokens=120, temperature=0)
    if parsed.status == "completed":  # the SDK's strict schema from a pydantic model, parsed back into it
        assert isinstance(parsed.output_parsed, City)


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"tools": [{"type": "function", "parameters": {"type": "object"}}]}, "tools[0].name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"tool_choice": {"type": "function", "name": "get_weather"}}, "tool_choice"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"text": {"format": {"type": "json_schema", "name": "x",
                          "schema": {"type": "object", "properties": {"a": {"type": "string", "format": "nope"}}}}}},
     "text.format.schema"),
])
def test_bad_tools_and_formats_are_400_naming_the_parameter(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/responses", body={"model": M, "input": "hi", **kwargs}, cast_to=object)
    assert err.value.param == param, err.value.body


@pytest.mark.slow
def test_smollm2_structured_outputs_and_tools_on_responses(make_settings, live_server):
    model = "smollm2-135m-instruct"
    with live_server(make_settings()) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        def sample(_):
            return c.responses.create(model=model, input="Describe Paris as JSON.", text=CITY_FORMAT, temperature=1,
                                      max_output_tokens=60)

        # the Responses API has no seed: 20 independent samples at temperature 1, 4 at a time (one batch)
        with ThreadPoolExecutor(4) as pool:
            for r in pool.map(sample, range(20)):
                assert r.status == "completed", r.incomplete_details
                jsonschema.validate(json.loads(r.output_text), CITY)

        first = c.responses.create(model=model, input="What's the weather like in Paris today?", tools=[WEATHER],
                                   tool_choice="required", parallel_tool_calls=False, temperature=0,
                                   max_output_tokens=120)
        call = _calls(first)[0]
        assert call.name == "get_weather"
        jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
        final = c.responses.create(model=model, previous_response_id=first.id, tools=[WEATHER], temperature=0,
                                   max_output_tokens=40, input=[{"type": "function_call_output", "call_id": call.call_id,
                                                                 "output": '{"temperature_c": 21, "sky": "sunny"}'}])
        assert final.status in ("completed", "incomplete")
        for again in _calls(final):  # auto: the model may call again; then the call must be valid
            jsonschema.validate(json.loads(again.arguments), WEATHER["parameters"])
        if not _calls(final):
            assert final.output_text
