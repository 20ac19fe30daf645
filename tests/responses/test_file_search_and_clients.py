"""file_search over vector stores with file_citation annotations, and third-party clients (LangChain's
ChatOpenAI on the Responses API, the OpenAI Agents SDK) against a real server."""

from __future__ import annotations

import json

import openai
import pytest
from kbhelpers import REFUND, WARRANTY, upload, wait_store

M = "tiny-chat"
RESULTS = ["file_search_call.results"]


@pytest.fixture
def kb(client):
    refund, warranty = upload(client, "refund.md", REFUND), upload(client, "warranty.md", WARRANTY)
    store = client.vector_stores.create(name="kb", file_ids=[refund, warranty])
    wait_store(client, store.id)
    return {"store": store.id, "refund": refund, "warranty": warranty}


@pytest.mark.parametrize(("question", "expected", "words"), [
    ("How many days do I have to ask for a refund?", "refund", "45 days"),
    ("电池保修多久？", "warranty", "电池保修一年"),
])
def test_file_search_finds_the_right_file_and_cites_it(client, kb, question, expected, words):
    tools = [{"type": "file_search", "vector_store_ids": [kb["store"]], "max_num_results": 2}]
    r = client.responses.create(model=M, input=question, tools=tools, include=RESULTS, max_output_tokens=8)
    call, message = r.output
    assert call.type == "file_search_call" and call.status == "completed" and call.queries == [question]
    assert call.results[0].file_id == kb[expected] and words in call.results[0].text
    assert call.results[0].filename == f"{expected}.md" and call.results[0].score > 0
    cites = message.content[0].annotations
    assert cites and all(a.type == "file_citation" for a in cites)
    assert {a.file_id for a in cites} <= {res.file_id for res in call.results}
    assert all(0 <= a.index <= len(message.content[0].text) for a in cites)
    # the sources were in the prompt: the same question without the tool is much shorter
    bare = client.responses.input_tokens.count(model=M, input=question).input_tokens
    assert r.usage.input_tokens > bare + 20


def test_file_search_results_only_when_included_and_streamed_events(client, kb):
    tools = [{"type": "file_search", "vector_store_ids": [kb["store"]]}]
    r = client.responses.create(model=M, input="refund days?", tools=tools, max_output_tokens=2)
    assert r.output[0].type == "file_search_call" and r.output[0].results is None
    kinds = []
    with client.responses.stream(model=M, input="refund days?", tools=tools, max_output_tokens=3) as stream:
        kinds = [e.type for e in stream]
    assert kinds[2:8] == ["response.output_item.added", "response.file_search_call.in_progress",
                          "response.file_search_call.searching", "response.file_search_call.completed",
                          "response.output_item.done", "response.output_item.added"]
    assert "response.output_text.annotation.added" in kinds
    strict = client.responses.create(model=M, input="refund days?", include=RESULTS, max_output_tokens=2, tools=[
        {**tools[0], "ranking_options": {"score_threshold": 0.99}}])
    everything = client.responses.create(model=M, input="refund days?", include=RESULTS, max_output_tokens=2,
                                         tools=tools)
    assert all(res.score >= 0.99 for res in strict.output[0].results)
    assert len(strict.output[0].results) < len(everything.output[0].results)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=M, input="x", tools=[{**tools[0], "ranking_options": {"score_threshold": 2}}])
    assert err.value.param == "tools[0].ranking_options.score_threshold"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=M, input="x", tools=[{"type": "file_search", "vector_store_ids": ["vs_no"]}])


def test_langchain_chat_openai_on_the_responses_api(client, server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=M, base_url=server.base_url, api_key="sk-test", use_responses_api=True,
                     max_tokens=6, temperature=0, max_retries=0)
    answer = llm.invoke([("system", "Be brief."), ("human", "Say hello")])
    assert isinstance(answer.content, list | str) and answer.text
    assert answer.usage_metadata["output_tokens"] == 6 and answer.usage_metadata["input_tokens"] > 0
    streamed = "".join(chunk.text for chunk in llm.stream("Say hello"))
    assert streamed == answer.text  # temperature 0: the same words, streamed


def test_the_agents_sdk_runs_an_agent_with_a_function_tool(client, server):
    """(The agent without tools runs in test_smollm2.py: the tiny model never ends an answer by itself.)"""
    from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, function_tool

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"It is sunny in {city}."

    model = OpenAIResponsesModel(model=M, openai_client=openai.AsyncOpenAI(base_url=server.base_url,
                                                                          api_key="sk-test", max_retries=0))
    # the tiny random-weight model never ends a text answer by itself: the agent stops at the tool's result
    agent = Agent(name="weather", instructions="Use the tool.", model=model, tools=[get_weather],
                  tool_use_behavior="stop_on_first_tool",
                  model_settings=ModelSettings(max_tokens=200, tool_choice="required", parallel_tool_calls=False))
    result = Runner.run_sync(agent, "Weather in Paris?", run_config=RunConfig(tracing_disabled=True),
                             max_turns=3)
    calls = [i for r in result.raw_responses for i in r.output if i.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    city = json.loads(calls[0].arguments)["city"]
    assert result.final_output == f"It is sunny in {city}."  # the SDK ran our tool with the parsed arguments
