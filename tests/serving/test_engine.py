"""The engine without HTTP: continuous batching equals one-at-a-time decoding, cancellation, and a real
model (the bundled SmolLM2) answering a real question."""

from __future__ import annotations

import json
import threading
import time

import pytest
from serving_support import TINY


@pytest.fixture(scope="module")
def engine(serving):

    return serving.server.app.state.tuneforge.engine


def _run(engine, prompt_ids, max_tokens=24, adapter=None, **params):
    from tuneforge.inference.batch import Delta, Finish, GenerationRequest
    from tuneforge.inference.sampling import SamplingParams

    request = GenerationRequest(TINY, adapter, prompt_ids, SamplingParams(max_tokens=max_tokens, **params))
    text, finish = "", None
    for event in engine.generate(request, timeout=120):
        if isinstance(event, Delta):
            text += event.text
        elif isinstance(event, Finish):
            finish = event
    assert finish.text == text
    return text


def test_staggered_continuous_batching_matches_solo_decoding(engine, tiny_adapters):
    """Requests joining a running batch (different prompt lengths -> left padding and cache merges), with
    mixed adapters, produce exactly what each produces alone."""
    tokenizer = engine.info(TINY).tokenizer
    prompts = [tokenizer(t, add_special_tokens=False).input_ids for t in (
        "Hello", "The quick brown fox jumps over the lazy dog. The quick brown fox", "0 1 2 3 4 5 6 7",
        "我们的产品支持中文和英文。", "Fine-tuning adapts a pretrained model")]
    adapters = [None, tiny_adapters["red"], tiny_adapters["blue"], None, tiny_adapters["red"]]
    solo = [_run(engine, p, adapter=a, temperature=0) for p, a in zip(prompts, adapters, strict=True)]
    results: dict[int, str] = {}

    def worker(i):
        results[i] = _run(engine, prompts[i], adapter=adapters[i], temperature=0)

    merges_before = engine.stats.merges
    threads = []
    for i in range(len(prompts)):
        threads.append(threading.Thread(target=worker, args=(i,)))
        threads[-1].start()
        time.sleep(0.05 * (i % 2))  # some arrive together, some join a running batch
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(len(prompts))] == solo
    assert engine.stats.merges > merges_before  # requests joined a batch that was already decoding


def test_seeded_sampling_is_independent_of_batch_neighbours(engine):
    tokenizer = engine.info(TINY).tokenizer
    prompt = tokenizer("Hello! How can", add_special_tokens=False).input_ids
    alone = _run(engine, prompt, temperature=0.9, seed=42)
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, _run(
        engine, prompt, temperature=0.9, seed=42 if i == 0 else i))) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == alone


def test_cancel_before_admission_and_failure_reporting(engine, tmp_path):
    from tuneforge.inference.batch import Failure, GenerationRequest
    from tuneforge.inference.sampling import SamplingParams

    events = []
    request = GenerationRequest(TINY, tmp_path / "missing-adapter", [1, 2, 3], SamplingParams(max_tokens=3))
    handle = engine.submit(request, events.append)
    deadline = time.time() + 10
    while not events and time.time() < deadline:
        time.sleep(0.02)
    assert isinstance(events[0], Failure) and "missing" in str(events[0].error)
    assert handle.cancelled


def test_base_model_lru_unloads_the_idle_base_and_its_adapters(serving, tiny_adapters):
    from serving_support import ANSWERS, QUESTION

    from tuneforge.inference.engine import Engine
    from tuneforge.inference.prompts import render_chat

    engine = Engine(serving.server.app.state.tuneforge.registry, max_base_models=1)
    try:
        tokenizer = engine.info(TINY).tokenizer
        prompt = render_chat(tokenizer, [{"role": "user", "content": QUESTION}], None)
        assert _run(engine, prompt, max_tokens=40, adapter=tiny_adapters["red"], temperature=0) == ANSWERS["red"]
        assert list(engine.loaded()) == [TINY]
        _run_on(engine, TINY + "-2", prompt)
        assert list(engine.loaded()) == [TINY + "-2"] and engine.stats.adapter_evictions == 1
        assert _run(engine, prompt, max_tokens=40, adapter=tiny_adapters["red"], temperature=0) == ANSWERS["red"]
        assert engine.stats.base_loads == 3
    finally:
        engine.shutdown()


def _run_on(engine, base, prompt_ids):
    from tuneforge.inference.batch import Finish, GenerationRequest
    from tuneforge.inference.sampling import SamplingParams

    events = list(engine.generate(GenerationRequest(base, None, prompt_ids, SamplingParams(max_tokens=3)), 60))
    assert isinstance(events[-1], Finish)


@pytest.mark.slow
def test_smollm2_knows_the_capital_of_france(make_settings):
    """The bundled real model through the whole stack (GGUF conversion is cached per test session)."""
    from fastapi.testclient import TestClient
    from openai import OpenAI

    from tuneforge.api.app import build_app

    settings = make_settings()
    with TestClient(build_app(settings)) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="x", http_client=http, max_retries=0)
        r = client.chat.completions.create(model="smollm2-135m-instruct", temperature=0, max_tokens=24,
                                           messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert "Paris" in r.choices[0].message.content
        assert r.choices[0].finish_reason in ("stop", "length")
        j = client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=48, seed=0, response_format={"type": "json_object"},
            messages=[{"role": "user", "content": "Give the capital of France as JSON with a key 'capital'."}])
        assert isinstance(json.loads(j.choices[0].message.content), dict)
        c = client.completions.create(model="smollm2-135m-instruct", prompt="The capital of France is",
                                      max_tokens=4, temperature=0)
        assert "Paris" in c.choices[0].text
