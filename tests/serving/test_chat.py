"""/v1/chat/completions through the official SDK (sync, async, streaming) against a real uvicorn."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest
from serving_support import ANSWERS, FT_BLUE, FT_OTHER, FT_RED, FT_TEMPLATED, QUESTION, TINY

ASK = [{"role": "user", "content": QUESTION}]


def test_adapters_answer_their_training(serving):
    client = serving.client()
    for model, answer in ((FT_RED, ANSWERS["red"]), (FT_BLUE, ANSWERS["blue"])):
        r = client.chat.completions.create(model=model, messages=ASK, temperature=0, max_tokens=40)
        assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == model
        choice = r.choices[0]
        assert choice.message.role == "assistant" and choice.message.content == answer
        assert choice.finish_reason == "stop" and choice.logprobs is None
        assert r.usage.prompt_tokens == 29 and r.usage.completion_tokens > 0
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        assert r.system_fingerprint.startswith("fp_")
    base = client.chat.completions.create(model=TINY, messages=ASK, temperature=0, max_tokens=12)
    assert base.choices[0].message.content not in ANSWERS.values()


def test_usage_counts_the_model_tokenizer(serving, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hello! "}, {"type": "text", "text": "Hi"}]}]
    r = serving.client().chat.completions.create(model=TINY, messages=messages, max_tokens=3, temperature=0)
    text = tokenizer.apply_chat_template([{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Hello! Hi"}], add_generation_prompt=True,
                                         tokenize=False)
    assert r.usage.prompt_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"


def test_roles_developer_tool_and_content_parts(serving, tiny_model_dir):
    from transformers import AutoTokenizer

    messages = [{"role": "developer", "content": "You answer in one word."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                {"role": "tool", "content": "42", "tool_call_id": "call_1"},
                {"role": "user", "content": "And?"}]
    r = serving.client().chat.completions.create(model=TINY, messages=messages, max_tokens=2, temperature=0)
    assert r.choices[0].finish_reason == "length"
    # The prompt the model saw: developer -> system (open chat templates know no 'developer'), content
    # parts joined, the tool result in its own turn as a <tool_response> block (the documented format for
    # templates without tool support, like this one).
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    expected = tokenizer.apply_chat_template(
        [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Hi"},
         {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "<tool_response>\n42\n</tool_response>"},
         {"role": "user", "content": "And?"}], add_generation_prompt=True, tokenize=False)
    assert r.usage.prompt_tokens == len(tokenizer(expected, add_special_tokens=False)["input_ids"])


def test_adapter_chat_template_is_used(serving):
    client = serving.client()
    plain = client.chat.completions.create(model=FT_RED, messages=ASK, max_tokens=1)
    templated = client.chat.completions.create(model=FT_TEMPLATED, messages=ASK, max_tokens=1)
    # the templated adapter's chat_template.jinja adds a system turn to every prompt
    assert templated.usage.prompt_tokens > plain.usage.prompt_tokens + 5


def test_stream_shape_and_usage_chunk(serving):
    client = serving.client()
    chunks = list(client.chat.completions.create(model=FT_BLUE, messages=ASK, temperature=0, max_tokens=40,
                                                 stream=True, stream_options={"include_usage": True}))
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWERS["blue"]
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens
    no_usage = list(client.chat.completions.create(model=FT_BLUE, messages=ASK, max_tokens=3, stream=True))
    assert all(c.choices for c in no_usage)  # no usage chunk unless asked


def test_raw_sse_ends_with_done(serving):
    with httpx.stream("POST", serving.server.base_url + "/chat/completions", json={
            "model": TINY, "messages": ASK, "max_tokens": 3, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


def test_seed_determinism_and_n(serving, tiny_model_dir):
    from transformers import AutoTokenizer

    client = serving.client()
    kwargs = dict(model=TINY, messages=ASK, temperature=1.0, max_tokens=12)
    a = client.chat.completions.create(seed=1234, n=3, **kwargs)
    b = client.chat.completions.create(seed=1234, n=3, **kwargs)
    c = client.chat.completions.create(seed=99, n=3, **kwargs)
    texts = lambda r: [ch.message.content for ch in r.choices]  # noqa: E731
    assert [ch.index for ch in a.choices] == [0, 1, 2]
    assert texts(a) == texts(b)
    assert texts(a) != texts(c)
    assert len(set(texts(a))) > 1  # the n choices are different samples
    # usage adds up every choice: with end-of-turn tokens banned, each one runs to max_tokens
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    never_stop = {str(tokenizer.convert_tokens_to_ids(t)): -100 for t in ("<|im_end|>", "<|endoftext|>")}
    full = client.chat.completions.create(seed=1234, n=3, logit_bias=never_stop, **kwargs)
    assert [ch.finish_reason for ch in full.choices] == ["length"] * 3
    assert full.usage.completion_tokens == 36
    streamed = {}
    for chunk in client.chat.completions.create(seed=1234, n=3, stream=True, **kwargs):
        for ch in chunk.choices:
            streamed[ch.index] = streamed.get(ch.index, "") + (ch.delta.content or "")
    assert [streamed[i] for i in range(3)] == texts(a)


def test_stop_sequences_are_honoured_and_never_leaked(serving):
    client = serving.client()
    full = client.chat.completions.create(model=FT_RED, messages=ASK, temperature=0, max_tokens=40)
    assert full.choices[0].message.content == ANSWERS["red"]
    r = client.chat.completions.create(model=FT_RED, messages=ASK, temperature=0, max_tokens=40, stop=" is")
    assert r.choices[0].message.content == "My favourite colour" and r.choices[0].finish_reason == "stop"
    r = client.chat.completions.create(model=FT_RED, messages=ASK, temperature=0, max_tokens=40,
                                       stop=["zzz", "our "])
    assert r.choices[0].message.content == "My favourite col"  # the first match wins
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=FT_RED, messages=ASK, temperature=0, max_tokens=40, stop=["colour is"], stream=True) if c.choices)
    assert streamed == "My favourite "
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=TINY, messages=ASK, stop=["a", "b", "c", "d", "e"])
    assert err.value.param == "stop"


def test_max_tokens_and_max_completion_tokens(serving):
    client = serving.client()
    r = client.chat.completions.create(model=FT_RED, messages=ASK, temperature=0, max_completion_tokens=4)
    assert r.usage.completion_tokens == 4 and r.choices[0].finish_reason == "length"
    assert ANSWERS["red"].startswith(r.choices[0].message.content)
    r = client.chat.completions.create(model=FT_RED, messages=ASK, temperature=0, max_tokens=2)
    assert r.usage.completion_tokens == 2


def test_temperature_top_p_and_penalties_change_sampling(serving):
    client = serving.client()
    base = dict(model=TINY, messages=ASK, max_tokens=16, seed=7)
    greedy = [client.chat.completions.create(temperature=0, **base).choices[0].message.content for _ in range(2)]
    assert greedy[0] == greedy[1]
    # top_p tiny keeps only the top token: identical to greedy whatever the seed
    nucleus = client.chat.completions.create(temperature=1.5, top_p=1e-6, **base).choices[0].message.content
    assert nucleus == greedy[0]
    hot = client.chat.completions.create(temperature=2, **base).choices[0].message.content
    assert hot != greedy[0]
    penalised = client.chat.completions.create(temperature=0, frequency_penalty=2, presence_penalty=2,
                                               **base).choices[0].message.content
    assert penalised != greedy[0]


def test_logit_bias_forces_a_token(serving, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    token = tokenizer(" fox", add_special_tokens=False).input_ids[0]
    r = serving.client().chat.completions.create(model=TINY, messages=ASK, max_tokens=3, temperature=0,
                                                 logit_bias={str(token): 100})
    assert r.choices[0].message.content == tokenizer.decode([token]) * 3


def test_logprobs(serving):
    r = serving.client().chat.completions.create(model=FT_RED, messages=ASK, temperature=0, max_tokens=40,
                                                 logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert "".join(t.token for t in content) == ANSWERS["red"]
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the most likely token
        assert bytes(entry.bytes).decode() == entry.token
    with pytest.raises(openai.BadRequestError):
        serving.client().chat.completions.create(model=TINY, messages=ASK, top_logprobs=2)


def test_json_object_output_always_parses(serving):
    client = serving.client()
    # a random model and a tight budget: the constraint must still close the object
    for seed, max_tokens in ((1, 40), (2, 9), (3, 2), (4, 80)):
        r = client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "JSON please"}],
                                           response_format={"type": "json_object"}, seed=seed,
                                           max_tokens=max_tokens)
        content = r.choices[0].message.content
        assert isinstance(json.loads(content), dict), content
        assert r.usage.completion_tokens <= max_tokens
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=FT_BLUE, messages=ASK, response_format={"type": "json_object"}, seed=5, max_tokens=30, stream=True)
        if c.choices)
    assert isinstance(json.loads(streamed), dict)


def test_not_found_and_bad_requests(serving):
    client = serving.client()
    for model in ("no-such-model", FT_OTHER, "ft:tiny-chat:default:x:ftjob-nope"):
        with pytest.raises(openai.NotFoundError) as err:
            client.chat.completions.create(model=model, messages=ASK)
        assert err.value.code == "model_not_found" and err.value.param == "model"
    bad = [
        (dict(messages=[{"role": "wizard", "content": "x"}]), "messages.[0].role"),
        (dict(messages=[]), "messages"),
        (dict(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), None),
        (dict(messages=ASK, tools=[{"type": "code_interpreter"}]), "tools.[0].type"),
        (dict(messages=ASK, tool_choice="required"), "tool_choice"),
        (dict(messages=ASK, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "array", "uniqueItems": True}}}), "response_format.json_schema.schema"),
        (dict(messages=ASK, temperature=3), "temperature"),
        (dict(messages=ASK, stream_options={"include_usage": True}), "stream_options"),
        (dict(messages=ASK, reasoning_effort="high"), "reasoning_effort"),
        (dict(messages=ASK, extra_body={"frobnicate": 1}), "frobnicate"),
    ]
    for kwargs, param in bad:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=TINY, **kwargs)
        assert err.value.type == "invalid_request_error"
        if param:
            assert err.value.param == param, (kwargs, err.value.param)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="multilingual-e5-small", messages=ASK)
    assert "embeddings" in err.value.message


def test_context_length_exceeded_is_an_error_not_a_truncation(serving):
    client = serving.client()
    long = [{"role": "user", "content": "fox " * 1100}]  # the tiny model's context is 1024 tokens
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=TINY, messages=long, max_tokens=5)
    assert err.value.code == "context_length_exceeded" and "1024" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:  # fits alone, but not with the completion budget
        client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "fox " * 500}],
                                       max_tokens=1000, stream=True)
    assert err.value.code == "context_length_exceeded"


def test_async_client_and_concurrent_adapters_are_batched(serving):
    stats = serving.engine.stats
    before_rows, before_steps = stats.decode_rows, stats.decode_steps

    async def main():
        client = serving.async_client()
        models = [FT_RED, FT_BLUE, TINY] * 4
        results = await asyncio.gather(*(client.chat.completions.create(
            model=m, messages=ASK, temperature=0, max_tokens=30) for m in models))
        streamed = await client.chat.completions.create(model=FT_BLUE, messages=ASK, temperature=0, max_tokens=30,
                                                        stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices])
        return models, results, text

    models, results, text = asyncio.run(main())
    base_answer = results[2].choices[0].message.content
    for model, r in zip(models, results, strict=True):
        expected = {FT_RED: ANSWERS["red"], FT_BLUE: ANSWERS["blue"], TINY: base_answer}[model]
        assert r.choices[0].message.content == expected, model
    assert text == ANSWERS["blue"]
    steps = stats.decode_steps - before_steps
    assert (stats.decode_rows - before_rows) / steps > 2, "concurrent requests should share forward passes"
    assert stats.max_batch >= 6


def test_adapter_lru_unloads_and_reloads(serving):
    client = serving.client()
    engine = serving.engine
    for model in (FT_RED, FT_BLUE, FT_TEMPLATED, FT_RED):  # capacity 2 in this module's settings
        client.chat.completions.create(model=model, messages=ASK, max_tokens=1)
    assert len(engine.loaded()[TINY]["adapters"]) == 2
    assert len(engine._bases[TINY].pool.model.peft_config) == 2  # evicted adapters are gone from the model
    assert engine.stats.adapter_evictions >= 1
    r = client.chat.completions.create(model=FT_BLUE, messages=ASK, temperature=0, max_tokens=40)
    assert r.choices[0].message.content == ANSWERS["blue"]  # reloaded after eviction, still correct


def test_disconnect_mid_stream_stops_generation(serving):
    engine = serving.engine
    stats = engine.stats
    cancelled = stats.rows_cancelled
    with httpx.stream("POST", serving.server.base_url + "/chat/completions", json={
            "model": TINY, "messages": ASK, "max_tokens": 900, "stream": True, "temperature": 1}) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # got a token: hang up
    deadline = time.time() + 10
    while stats.rows_cancelled == cancelled and time.time() < deadline:
        time.sleep(0.05)
    assert stats.rows_cancelled == cancelled + 1
    deadline = time.time() + 10
    while engine.loaded()[TINY]["batch"] and time.time() < deadline:  # the row has left the batch
        time.sleep(0.05)
    assert engine.loaded()[TINY]["batch"] == 0  # nothing is left to run for the departed client


def test_disconnect_while_waiting_for_a_non_streaming_answer_stops_generation(serving, tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # end-of-turn tokens banned: the answer runs to max_tokens, far longer than the client waits
    never_stop = {str(tokenizer.convert_tokens_to_ids(t)): -100 for t in ("<|im_end|>", "<|endoftext|>")}
    engine = serving.engine
    stats = engine.stats
    cancelled = stats.rows_cancelled
    with pytest.raises(httpx.TimeoutException):  # the client gives up before the answer is ready
        httpx.post(serving.server.base_url + "/chat/completions", timeout=0.5, json={
            "model": TINY, "messages": ASK, "max_tokens": 900, "temperature": 1, "logit_bias": never_stop})
    deadline = time.time() + 10
    while stats.rows_cancelled == cancelled and time.time() < deadline:
        time.sleep(0.05)
    assert stats.rows_cancelled == cancelled + 1
    deadline = time.time() + 10
    while engine.loaded()[TINY]["batch"] and time.time() < deadline:  # the row has left the batch
        time.sleep(0.05)
    assert engine.loaded()[TINY]["batch"] == 0  # nothing is left to run for the departed client


def test_health_answers_while_generating(serving):
    result = {}

    def long_generation():
        result["r"] = serving.client().chat.completions.create(model=TINY, messages=ASK, max_tokens=900,
                                                               temperature=1, seed=3)

    engine = serving.engine
    generated = engine.stats.tokens_generated
    thread = threading.Thread(target=long_generation)
    thread.start()
    deadline = time.time() + 30
    while engine.stats.tokens_generated == generated and time.time() < deadline:  # generation under way
        time.sleep(0.02)
    assert engine.stats.tokens_generated > generated
    latencies = []
    while thread.is_alive() and len(latencies) < 5:
        started = time.perf_counter()
        assert httpx.get(serving.server.root_url + "/health", timeout=5).status_code == 200
        latencies.append(time.perf_counter() - started)
    thread.join()
    assert result["r"].usage.completion_tokens > 0
    assert latencies and max(latencies) < 1.0
