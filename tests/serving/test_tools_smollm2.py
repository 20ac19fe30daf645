"""Function calling and strict structured outputs on the bundled SmolLM2 through the official SDK and a real
uvicorn: a real model's answers must parse and validate, and the tool round trip must continue."""

from __future__ import annotations

import json

import jsonschema
import pytest

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}, "strict": True}}
CITY = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"},
                                         "population": {"type": "integer", "minimum": 0}},
        "required": ["city", "country", "population"], "additionalProperties": False}


def test_smollm2_json_schema_tools_and_round_trip(make_settings, live_server):
    from openai import OpenAI

    with live_server(make_settings()) as server:
        client = OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}
        for seed in range(20):
            r = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Describe Paris as JSON."}], response_format=fmt,
                temperature=1, seed=seed, max_tokens=60)
            jsonschema.validate(json.loads(r.choices[0].message.content), CITY)

        ask = [{"role": "user", "content": "What's the weather like in Paris today?"}]
        first = client.chat.completions.create(model=MODEL, messages=ask, tools=[WEATHER], tool_choice="required",
                                               parallel_tool_calls=False, temperature=0, max_tokens=120)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather"
        jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])

        history = ask + [choice.message.model_dump(exclude_none=True),
                         {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21, "sky": "sunny"}'}]
        final = client.chat.completions.create(model=MODEL, messages=history, tools=[WEATHER], temperature=0,
                                               max_tokens=40)
        answer = final.choices[0]
        if answer.message.tool_calls:  # auto: the model may call again; then the call must be valid
            for again in answer.message.tool_calls:
                jsonschema.validate(json.loads(again.function.arguments), WEATHER["function"]["parameters"])
        else:
            assert answer.message.content and answer.finish_reason in ("stop", "length")
