"""Upstream passthrough: a second tuneforge server on loopback plays "OpenAI behind the user's proxy"."""

from __future__ import annotations

import json
import logging
import time

import httpx
import numpy as np
import openai
import pytest
from serving_support import QUESTION, Server

from tuneforge.testing import start_keyed_server

ASK = [{"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def pair(tmp_path_factory, models_cache, tiny_model_dir):
    """(main, upstream, upstream key): the upstream requires an API key and serves 'up-tiny' and 'up-e5'."""
    from tuneforge.settings import Settings

    up_settings = Settings(data_dir=tmp_path_factory.mktemp("upstream") / "data", models_cache_dir=models_cache,
                           embedding_model="up-e5")
    upstream, key = start_keyed_server(up_settings, {"up-tiny": str(tiny_model_dir)}, Server)
    config = [{"name": "loopback", "models": ["up-*", "ft:up-*"], "base_url": upstream.base_url, "api_key": key},
              {"name": "dead", "models": ["dead-*"], "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-dead"}]
    main_settings = Settings(data_dir=tmp_path_factory.mktemp("main") / "data", models_cache_dir=models_cache,
                             upstreams=json.dumps(config), upstream_timeout_s=30)
    main = Server(main_settings).start()
    try:
        yield main, upstream, key
    finally:
        main.stop()
        upstream.stop()


def test_chat_is_forwarded_with_the_upstream_key(pair, caplog):
    caplog.set_level(logging.DEBUG)
    main, upstream, key = pair
    client = openai.OpenAI(base_url=main.base_url, api_key="sk-local-user", max_retries=0)
    direct = openai.OpenAI(base_url=upstream.base_url, api_key=key, max_retries=0)
    kwargs = dict(model="up-tiny", messages=ASK, max_tokens=8, seed=11, temperature=1)
    via = client.chat.completions.create(**kwargs)
    ref = direct.chat.completions.create(**kwargs)
    assert via.model == "up-tiny" and via.choices[0].message.content == ref.choices[0].message.content
    assert via.usage.model_dump() == ref.usage.model_dump()
    stream = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == ref.choices[0].message.content
    assert stream[-1].choices == [] and stream[-1].usage.completion_tokens == ref.usage.completion_tokens
    assert len({c.id for c in stream}) == 1
    assert key not in caplog.text


def test_completions_and_embeddings_are_forwarded(pair):
    main, upstream, key = pair
    client = openai.OpenAI(base_url=main.base_url, api_key="x", max_retries=0)
    direct = openai.OpenAI(base_url=upstream.base_url, api_key=key, max_retries=0)
    c = client.completions.create(model="up-tiny", prompt="Hello", max_tokens=5, temperature=0)
    assert c.choices[0].text == direct.completions.create(model="up-tiny", prompt="Hello", max_tokens=5,
                                                          temperature=0).choices[0].text
    streamed = "".join(ch.choices[0].text for ch in client.completions.create(
        model="up-tiny", prompt="Hello", max_tokens=5, temperature=0, stream=True) if ch.choices)
    assert streamed == c.choices[0].text
    e = client.embeddings.create(model="up-e5", input=["hello", "world"])  # base64 through the proxy
    vectors = np.array([d.embedding for d in e.data])
    assert vectors.shape == (2, 384) and e.model == "up-e5"
    local = client.embeddings.create(model="multilingual-e5-small", input=["hello"])  # still served locally
    assert np.allclose(local.data[0].embedding, vectors[0], atol=1e-5)


def test_upstream_errors_pass_through_in_the_envelope(pair):
    main, _, key = pair
    client = openai.OpenAI(base_url=main.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="up-missing", messages=ASK)
    assert err.value.code == "model_not_found" and "up-missing" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="up-tiny", messages=ASK, temperature=5)
    assert err.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as err:  # forwarded verbatim, even params we would reject
        client.chat.completions.create(model="up-tiny", messages=ASK,
                                       prediction={"type": "content", "content": "x"})
    assert err.value.param == "prediction"
    assert key not in json.dumps(err.value.body)
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="dead-model", messages=ASK)
    assert err.value.status_code == 502 and err.value.code == "upstream_unavailable"
    assert "sk-dead" not in err.value.message


def test_models_list_merges_reachable_upstreams(pair):
    main, _, _ = pair
    client = openai.OpenAI(base_url=main.base_url, api_key="x", max_retries=0)
    started = time.perf_counter()
    ids = [m.id for m in client.models.list()]
    assert "up-tiny" in ids and "up-e5" in ids and "multilingual-e5-small" in ids
    assert "smollm2-135m-instruct" in ids and not any(i.startswith("dead-") for i in ids)
    assert time.perf_counter() - started < 5
    got = client.models.retrieve("up-tiny")
    assert got.model_extra["tuneforge"] == {"source": "upstream", "upstream": "loopback"}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("up-nothing")
    raw = httpx.get(main.base_url + "/models").text
    assert "base_url" not in raw and "api_key" not in raw


def test_gateway_api_for_other_subsystems(pair):
    from tuneforge.gateway import UpstreamError

    main, _, _ = pair
    gateway = main.app.state.tuneforge.gateway
    upstream = gateway.resolve("up-tiny")
    assert upstream is not None and gateway.resolve("smollm2-135m-instruct") is None
    assert "up-tiny" in [m["id"] for m in gateway.call(upstream, "GET", "models")["data"]]
    with pytest.raises(UpstreamError) as err:  # the provider's 404, with its status, as the one error type
        gateway.call(upstream, "GET", "models/up-nothing")
    assert err.value.status_code == 404


def test_fine_tuning_jobs_for_upstream_models_run_there(pair):
    from tuneforge.db.session import Database
    from tuneforge.training import upstream_jobs

    main, upstream, key = pair
    client = openai.OpenAI(base_url=main.base_url, api_key="sk-local-user", max_retries=0)
    direct = openai.OpenAI(base_url=upstream.base_url, api_key=key, max_retries=0)
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"It is {2 * i}."}]} for i in range(12)]
    data = ("\n".join(json.dumps(r) for r in rows) + "\n").encode()
    local = client.files.create(file=("sums.jsonl", data), purpose="fine-tune")

    job = client.fine_tuning.jobs.create(model="up-tiny", training_file=local.id, suffix="sums",
                                         hyperparameters={"n_epochs": 1})
    assert job.model == "up-tiny" and job.training_file != local.id  # the job runs on a copy upstream
    assert direct.files.content(job.training_file).content == data
    assert direct.fine_tuning.jobs.retrieve(job.id).id == job.id
    deadline = time.time() + 180
    while (final := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.time() < deadline, final.status
        time.sleep(0.5)
    assert final.status == "succeeded", final.error
    assert final.fine_tuned_model.startswith("ft:up-tiny:")

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert [e.id for e in events] == [e.id for e in direct.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert any(e.type == "metrics" for e in events)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.id for c in checkpoints] == [c.id for c in direct.fine_tuning.jobs.checkpoints.list(job.id).data]
    answer = client.chat.completions.create(model=final.fine_tuned_model, messages=ASK, max_tokens=4)
    assert answer.model == final.fine_tuned_model  # the fine-tuned upstream model is served through the gateway

    with pytest.raises(openai.BadRequestError):  # the upstream's own error, passed through
        client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.NotFoundError) as err:  # a local file id that does not exist
        client.fine_tuning.jobs.create(model="up-tiny", training_file="file-nope")
    assert err.value.param == "training_file"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-unknown")
    db = Database(main.settings.resolved_database_url)
    with db.session() as session:  # the mapping answers only for the owning project
        assert upstream_jobs.owner(main.app.state.tuneforge.gateway, session, "proj_other", job.id) is None
    db.dispose()


def test_assistant_runs_on_an_upstream_model(pair):

    main, upstream, key = pair
    client = openai.OpenAI(base_url=main.base_url, api_key="sk-local-user", max_retries=0)
    engine = upstream.app.state.tuneforge.engine
    before = engine.stats.tokens_generated
    assistant = client.beta.assistants.create(model="up-tiny", instructions="Answer briefly.")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, temperature=0, max_completion_tokens=6, poll_interval_ms=100,
        thread={"messages": [{"role": "user", "content": QUESTION}]})
    assert run.status in ("completed", "incomplete"), run.last_error
    assert run.usage.completion_tokens > 0
    assert engine.stats.tokens_generated > before  # the tokens were generated by the upstream server
    messages = client.beta.threads.messages.list(run.thread_id, run_id=run.id).data
    assert messages and messages[0].role == "assistant"
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.create(model="not-anywhere")
