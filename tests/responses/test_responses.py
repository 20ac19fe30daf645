"""/v1/responses through the official SDK against a real server, on the tiny random model (its words are
noise: these tests check shapes, storage, context, events and errors, never the meaning of an answer)."""

from __future__ import annotations

import openai
import pytest

M = "tiny-chat"


def test_create_retrieve_delete_and_input_items(client):
    r = client.responses.create(model=M, input="Hello there", instructions="Be brief.", max_output_tokens=8,
                                temperature=0, metadata={"team": "support"})
    assert r.id.startswith("resp_") and r.object == "response" and r.status in ("completed", "incomplete")
    assert r.instructions == "Be brief." and r.metadata == {"team": "support"} and r.store is True
    message = r.output[0]
    assert message.type == "message" and message.role == "assistant" and message.content[0].type == "output_text"
    assert r.output_text == message.content[0].text
    assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 8
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens"

    again = client.responses.retrieve(r.id)
    assert again.output_text == r.output_text and again.usage == r.usage and again.status == r.status

    items = client.responses.input_items.list(r.id)
    assert [i.role for i in items.data] == ["user"] and items.data[0].content[0].text == "Hello there"

    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_input_items_are_paginated_in_both_orders(client):
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(5)]
    r = client.responses.create(model=M, input=turns, max_output_tokens=2)
    page = client.responses.input_items.list(r.id, limit=2, order="asc")
    assert [i.content[0].text for i in page.data] == ["turn 0", "turn 1"] and page.has_more
    assert [i.content[0].text for i in client.responses.input_items.list(r.id, limit=2, order="asc")] == \
        [f"turn {i}" for i in range(5)]  # the SDK follows ``after`` until has_more is false
    newest = client.responses.input_items.list(r.id, limit=1)
    assert newest.data[0].content[0].text == "turn 4" and newest.data[0].type == "message"
    assert client.responses.input_items.list(r.id, order="desc").data[-1].content[0].text == "turn 0"


def test_stream_events_in_order_and_deltas_equal_the_final_text(client):
    """The tiny model never stops by itself at temperature 0, so this stream ends ``response.incomplete``
    (cut by max_output_tokens); the SmolLM2 test covers ``response.completed`` and get_final_response()."""
    deltas, kinds, numbers, last = [], [], [], None
    with client.responses.stream(model=M, input="Tell me something", max_output_tokens=12, temperature=0) as stream:
        for event in stream:
            kinds.append(event.type)
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
                assert event.snapshot == "".join(deltas)  # the helper's running text
            if event.type == "response.output_text.done":
                done_text = event.text
            last = event
    assert numbers == list(range(len(numbers)))
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.incomplete"]
    assert set(kinds[4:-4]) == {"response.output_text.delta"} and 1 <= len(deltas) <= 12
    final = last.response
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert "".join(deltas) == done_text == final.output_text and final.usage.output_tokens == 12
    stored = client.responses.retrieve(final.id)
    assert stored.output_text == final.output_text and stored.status == "incomplete"


def test_previous_response_id_carries_the_earlier_turns(client):
    first = client.responses.create(model=M, input="My name is Quentin Zeppelin.", max_output_tokens=6,
                                    temperature=0)
    alone = client.responses.input_tokens.count(model=M, input="What is my name?").input_tokens
    follow = client.responses.create(model=M, input="What is my name?", previous_response_id=first.id,
                                     max_output_tokens=6, temperature=0)
    assert follow.previous_response_id == first.id
    counted = client.responses.input_tokens.count(model=M, input="What is my name?",
                                                  previous_response_id=first.id).input_tokens
    # the prompt holds the first turn (input and answer) before the new question
    assert follow.usage.input_tokens == counted
    assert counted >= alone + first.usage.output_tokens + 5
    # only the new turn is this response's input
    assert [i.content[0].text for i in client.responses.input_items.list(follow.id)] == ["What is my name?"]
    # instructions are not carried over
    assert follow.instructions is None


def test_truncation_disabled_is_a_400_and_auto_drops_the_oldest_items(client):
    long = "word " * 3000
    turns = [{"role": "user", "content": long}, {"role": "assistant", "content": "ok"},
             {"role": "user", "content": "short question"}]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=M, input=turns, max_output_tokens=4)
    assert err.value.code == "context_length_exceeded" and err.value.param == "input"
    r = client.responses.create(model=M, input=turns, max_output_tokens=4, truncation="auto")
    assert r.truncation == "auto" and r.usage.input_tokens < 100
    assert len(client.responses.input_items.list(r.id).data) == 3  # the stored input is whole


def test_logprobs_are_included_when_asked(client):
    r = client.responses.create(model=M, input="Hi", max_output_tokens=4, temperature=0, top_logprobs=2,
                                include=["message.output_text.logprobs"])
    logprobs = r.output[0].content[0].logprobs
    assert len(logprobs) == r.usage.output_tokens and all(len(lp.top_logprobs) == 2 for lp in logprobs)
    assert "".join(lp.token for lp in logprobs) == r.output_text


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"frobnicate": 1}, "frobnicate"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"include": ["message.input_image.image_url"]}, "include[0]"),
    ({"background": True, "stream": True}, "background"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x"}]}]},
     "input[0].content[0].type"),
])
def test_unsupported_parameters_are_rejected_by_name(client, kwargs, param):
    body = {"model": M, "input": "hi", **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/responses", body=body, cast_to=object)
    assert err.value.status_code == 400 and err.value.param == param, err.value.body


def test_unknown_model_and_response_ids_are_404(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model=M, input="hi", previous_response_id="resp_nope")
    assert err.value.param == "previous_response_id"
    for call in (client.responses.retrieve, client.responses.delete, client.responses.cancel,
                 client.responses.input_items.list):
        with pytest.raises(openai.NotFoundError):
            call("resp_nope")


def test_json_object_format_gives_json(client):
    import json

    r = client.responses.create(model=M, input="Give me JSON", max_output_tokens=24, temperature=0,
                                text={"format": {"type": "json_object"}})
    if r.status == "completed":
        assert isinstance(json.loads(r.output_text), dict)
    assert r.text.format.type == "json_object"


def test_store_false_is_not_kept(client):
    r = client.responses.create(model=M, input="hi", max_output_tokens=2, store=False)
    assert r.store is False and r.output_text is not None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
