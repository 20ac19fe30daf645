"""Function calling and strict structured outputs through the official SDK against a real uvicorn (tiny
random model: whatever it "wants" to write, the grammar must make the output valid)."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel
from serving_support import TINY

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                                    "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                   "required": ["city", "unit", "days"], "additionalProperties": False}, "strict": True}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}},
                                       "required": ["zone"], "additionalProperties": False}}}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]
PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 30},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b", "c"]}, "maxItems": 3},
    "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
                "required": ["city", "zip"], "additionalProperties": False}},
    "required": ["name", "age", "tags", "address"], "additionalProperties": False}


def _args(call, tool) -> dict:
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, tool["function"]["parameters"])
    return args


def test_json_schema_strict_validates_on_20_seeds_at_temperature_1(serving):
    client = serving.client()
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    for seed in range(20):
        r = client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "A person, as JSON"}],
                                           response_format=fmt, temperature=1, seed=seed, max_tokens=80)
        jsonschema.validate(json.loads(r.choices[0].message.content), PERSON)
        assert r.usage.completion_tokens <= 80


def test_sdk_parse_with_a_pydantic_model(serving):
    class Answer(BaseModel):
        city: str
        sunny: bool

    r = serving.client().chat.completions.parse(model=TINY, messages=ASK, response_format=Answer, seed=3,
                                                max_tokens=60)
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, Answer)


def test_required_tool_call_parses_and_validates(serving):
    client = serving.client()
    for seed in range(5):
        r = client.chat.completions.create(model=TINY, messages=ASK, tools=[WEATHER, TIME], tool_choice="required",
                                           parallel_tool_calls=False, seed=seed, temperature=1, max_tokens=120)
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        assert len(choice.message.tool_calls) == 1
        call = choice.message.tool_calls[0]
        assert call.type == "function" and call.id.startswith("call_")
        _args(call, WEATHER if call.function.name == "get_weather" else TIME)


def test_named_function_is_the_one_called(serving):
    r = serving.client().chat.completions.create(
        model=TINY, messages=ASK, tools=[WEATHER, TIME], seed=1, max_tokens=120,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    calls = r.choices[0].message.tool_calls
    assert calls and all(c.function.name == "get_time" for c in calls)
    for call in calls:
        _args(call, TIME)


def test_streamed_tool_call_deltas_reassemble_to_the_same_call(serving):
    client = serving.client()
    kwargs = dict(model=TINY, messages=ASK, tools=[WEATHER], tool_choice="required", seed=7, temperature=1,
                  max_tokens=120)
    whole = client.chat.completions.create(**kwargs).choices[0].message.tool_calls
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    first = deltas[0]
    # OpenAI's shape: id, type and name first (empty arguments), then argument pieces only
    assert first.id and first.type == "function" and first.function.name == "get_weather"
    assert first.function.arguments == ""
    assert all(d.id is None and d.function.name is None for d in deltas[1:])
    calls: dict[int, str] = {}
    for d in deltas:
        calls[d.index] = calls.get(d.index, "") + (d.function.arguments or "")
    assert [calls[i] for i in sorted(calls)] == [c.function.arguments for c in whole]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    # the SDK's own accumulator agrees
    with client.chat.completions.stream(**kwargs) as stream:
        final = stream.get_final_completion()
    assert [c.function.arguments for c in final.choices[0].message.tool_calls] == [calls[i] for i in sorted(calls)]


def test_tool_round_trip_completes(serving):
    client = serving.client()
    first = client.chat.completions.create(model=TINY, messages=ASK, tools=[WEATHER], tool_choice="required", seed=2,
                                           max_tokens=120)
    message = first.choices[0].message
    history = ASK + [message.model_dump(exclude_none=True)] + [
        {"role": "tool", "tool_call_id": c.id, "content": json.dumps({"temperature": 21})}
        for c in message.tool_calls]
    final = client.chat.completions.create(model=TINY, messages=history, tools=[WEATHER], tool_choice="none",
                                           seed=2, max_tokens=20)
    assert final.choices[0].message.tool_calls is None
    assert isinstance(final.choices[0].message.content, str)
    bare = client.chat.completions.create(model=TINY, messages=ASK, tools=[WEATHER], tool_choice="none",
                                          max_tokens=1)
    assert final.usage.prompt_tokens > bare.usage.prompt_tokens + 20  # the call and its result are in the prompt
    with pytest.raises(openai.BadRequestError) as err:  # a tool result must say which call it answers
        client.chat.completions.create(model=TINY, messages=history[:-1] + [{"role": "tool", "content": "x"}])
    assert err.value.param == f"messages.[{len(history) - 1}].tool_call_id"


def test_auto_lets_the_model_choose_and_stays_valid(serving):
    client = serving.client()
    for seed in range(4):
        r = client.chat.completions.create(model=TINY, messages=ASK, tools=[WEATHER], seed=seed, max_tokens=40)
        choice = r.choices[0]
        if choice.message.tool_calls:  # a random model rarely starts with <tool_call>; if it does: valid
            assert choice.finish_reason in ("tool_calls", "length")
        else:
            assert isinstance(choice.message.content, str)


def test_unsupported_schema_features_are_400s_naming_them(serving):
    client = serving.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=TINY, messages=ASK, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {
                "type": "object", "properties": {"a": {"not": {"type": "string"}}}}}})
    assert err.value.param == "response_format.json_schema.schema" and "not" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=TINY, messages=ASK, tool_choice="required", tools=[{
            "type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}}}])
    assert err.value.param == "tools" and "uniqueItems" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=TINY, messages=ASK, tools=[WEATHER], tool_choice="required", stop=["x"])
    assert err.value.param == "stop"


def test_cli_chat_with_tools_file(serving, tmp_path):
    from typer.testing import CliRunner

    from tuneforge.cli.main import app

    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([WEATHER]))
    url = ["--base-url", serving.server.base_url]
    # the in-process server's first generation may log a library warning into the captured output
    serving.client().chat.completions.create(model=TINY, messages=ASK, max_tokens=1)
    one = CliRunner().invoke(app, ["chat", TINY, "-m", "Weather in Paris?", "--tools", str(tools),
                                   "--tool-choice", "get_weather", "--seed", "1", "--max-tokens", "200", "--json", *url])
    assert one.exit_code == 0, one.output
    call = json.loads(one.stdout)["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    _args(openai.types.chat.ChatCompletionMessageFunctionToolCall.model_validate(call), WEATHER)
    # interactive: the call is shown, the typed result goes back, the model continues (and calls again:
    # 'required' forces a call every turn; end of input stops asking)
    talk = CliRunner().invoke(app, ["chat", TINY, "--tools", str(tools), "--tool-choice", "required", "--seed", "2",
                                    "--max-tokens", "200", *url], input='Weather in Paris?\n{"c": 21}\n')
    assert talk.exit_code == 0, talk.output
    assert talk.output.count("[calls get_weather]") == 2
