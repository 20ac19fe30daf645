"""Function tools in Assistants runs on an upstream model: the tools, tool_choice and the call history are
forwarded in the upstream chat completion (a second tuneforge on loopback plays the provider, so its
grammar makes the tiny model's required call valid)."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tuneforge.testing import LiveServer, start_keyed_server

UP = "up-tiny"
LOOKUP = {"type": "function", "function": {
    "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string", "enum": ["a", "b"]}},
                                     "required": ["q"], "additionalProperties": False}}}


@pytest.fixture
def main(tmp_path_factory, models_cache, tiny_model_dir):
    from tuneforge.settings import Settings

    up_settings = Settings(data_dir=tmp_path_factory.mktemp("upstream") / "data", models_cache_dir=models_cache)
    upstream, up_key = start_keyed_server(up_settings, {UP: str(tiny_model_dir)})
    config = [{"name": "loopback", "models": ["up-*"], "base_url": upstream.base_url, "api_key": up_key}]
    main_settings = Settings(data_dir=tmp_path_factory.mktemp("main") / "data", models_cache_dir=models_cache,
                             upstreams=json.dumps(config), upstream_timeout_s=60)
    server = LiveServer(main_settings).start()
    try:
        yield openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    finally:
        server.stop()
        upstream.stop()


def test_upstream_run_calls_a_function_and_continues_with_its_output(main):
    c = main
    assistant = c.beta.assistants.create(model=UP, tools=[LOOKUP])
    t = c.beta.threads.create(messages=[{"role": "user", "content": "Look up a"}])
    run = c.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=assistant.id, tool_choice="required",
                                              parallel_tool_calls=False, temperature=0, max_completion_tokens=120,
                                              poll_interval_ms=50)
    assert run.status == "requires_action", run.last_error
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "lookup"
    jsonschema.validate(json.loads(calls[0].function.arguments), LOOKUP["function"]["parameters"])
    assert run.usage.completion_tokens > 0
    run = c.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=t.id, run_id=run.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "found"}],
        poll_interval_ms=50)
    assert run.status in ("completed", "incomplete"), run.last_error
    steps = list(c.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id, order="asc"))
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].step_details.tool_calls[0].function.output == "found"
