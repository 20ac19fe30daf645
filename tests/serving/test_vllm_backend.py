"""vLLM as the serving backend of a base model and its fine-tuned adapters, against a stand-in vLLM server
(a real HTTP server on loopback, ``vllm_standin``), through a real tuneforge server and the openai SDK.

The real vLLM is exercised by ``test_vllm_real.py`` (marker ``vllm``, opt-in)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from serving_support import Server, register_stand_in_adapters
from vllm_standin import StandInVllm

BASE = "smollm2-135m-instruct"
DEAD_BASE = "tiny-dead"  # a base whose vLLM server is down
LOCAL_BASE = "tiny-local"  # a base on the built-in engine
FT_A = f"ft:{BASE}:default:a:ftjob-a"
FT_B = f"ft:{BASE}:default:b:ftjob-b"
FT_C = f"ft:{BASE}:default:c:ftjob-c"
FT_BROKEN = f"ft:{BASE}:default:broken:ftjob-broken"
FT_NO_WEIGHTS = f"ft:{BASE}:default:noweights:ftjob-noweights"
FT_DEAD = f"ft:{DEAD_BASE}:default:x:ftjob-dead"
FT_OTHER = f"ft:{BASE}:other:secret:ftjob-other"
ASK = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory, models_cache, tiny_model_dir):
    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.settings import Settings

    vllm = StandInVllm(BASE).start()
    servers = {BASE: vllm.url, DEAD_BASE: "http://127.0.0.1:9"}
    settings = Settings(data_dir=tmp_path_factory.mktemp("vllm") / "data", models_cache_dir=models_cache,
                        vllm_servers=json.dumps(servers), upstream_timeout_s=30)
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    registry = ModelRegistry(settings, db)
    registry.register(DEAD_BASE, str(tiny_model_dir), None)
    registry.register(LOCAL_BASE, str(tiny_model_dir), None)
    keys = register_stand_in_adapters(db, settings, BASE, [(FT_A, "default", BASE), (FT_B, "default", BASE),
                                                           (FT_C, "default", BASE), (FT_DEAD, "default", DEAD_BASE),
                                                           (FT_OTHER, "other", BASE)])
    db.dispose()
    server = Server(settings).start()
    try:
        yield server, vllm, keys, settings
    finally:
        server.stop()
        vllm.stop()


def _client(env, project="default"):
    server, _, keys, _ = env
    return openai.OpenAI(base_url=server.base_url, api_key=keys[project], max_retries=0)


def test_base_and_fine_tuned_models_are_answered_by_vllm(env):
    _, vllm, _, settings = env
    client = _client(env)
    base = client.chat.completions.create(model=BASE, messages=ASK, max_tokens=8)
    assert base.model == BASE and base.choices[0].message.content == vllm.answer(BASE)
    assert base.usage.total_tokens == base.usage.prompt_tokens + base.usage.completion_tokens > 0
    assert vllm.calls_to("/v1/load_lora_adapter") == []  # a base model needs no adapter

    tuned = client.chat.completions.create(model=FT_A, messages=ASK, max_tokens=8)
    assert tuned.model == FT_A and tuned.choices[0].message.content == vllm.answer(FT_A)
    text = client.completions.create(model=FT_A, prompt="Hello", max_tokens=8)
    assert text.object == "text_completion" and text.choices[0].text == vllm.answer(FT_A)
    loads = [b for b in vllm.calls_to("/v1/load_lora_adapter") if b["lora_name"] == FT_A]
    assert loads == [{"lora_name": FT_A, "lora_path": str((settings.data_dir / "adapters" / "a").resolve())}]
    # the request reached vLLM as the client sent it: the fine-tuned id is the lora_name
    assert [b["model"] for b in vllm.calls_to("/v1/chat/completions")][-1] == FT_A


def test_models_say_which_backend_serves_them(env):
    client = _client(env)
    listed = {m.id: m.model_extra["tuneforge"] for m in client.models.list()}
    assert listed[BASE]["backend"] == "vllm" and listed[FT_A]["backend"] == "vllm"
    assert "backend" not in listed[LOCAL_BASE] and FT_OTHER not in listed
    assert client.models.retrieve(FT_A).model_extra["tuneforge"]["backend"] == "vllm"


def test_streaming_keeps_the_openai_shape(env):
    _, vllm, _, _ = env
    client = _client(env)
    chunks = list(client.chat.completions.create(model=FT_A, messages=ASK, max_tokens=8, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == vllm.answer(FT_A)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert {c.object for c in chunks} == {"chat.completion.chunk"} and {c.model for c in chunks} == {FT_A}
    pieces = list(client.completions.create(model=BASE, prompt="Hello", max_tokens=8, stream=True))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == vllm.answer(BASE)


def test_an_adapter_is_loaded_once_under_concurrent_first_requests(env):
    _, vllm, _, _ = env
    client = _client(env)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.chat.completions.create(
            model=FT_B, messages=ASK, max_tokens=4).choices[0].message.content, range(8)))
    assert answers == [vllm.answer(FT_B)] * 8
    assert len([b for b in vllm.calls_to("/v1/load_lora_adapter") if b["lora_name"] == FT_B]) == 1


def test_projects_only_reach_their_own_fine_tuned_models(env):
    _, vllm, _, _ = env
    before = len(vllm.calls)
    for project, model in (("other", FT_A), ("default", FT_OTHER)):
        with pytest.raises(openai.NotFoundError) as err:
            _client(env, project).chat.completions.create(model=model, messages=ASK)
        assert err.value.code == "model_not_found" and model in err.value.message
    assert len(vllm.calls) == before  # refused before anything reached vLLM
    own = _client(env, "other").chat.completions.create(model=FT_OTHER, messages=ASK)
    assert own.choices[0].message.content == vllm.answer(FT_OTHER)


def test_a_restarted_vllm_gets_the_adapter_again(env):
    _, vllm, _, _ = env
    client = _client(env)
    client.chat.completions.create(model=FT_C, messages=ASK)
    vllm.restart()  # the adapters loaded at runtime are gone
    again = client.chat.completions.create(model=FT_C, messages=ASK)
    assert again.choices[0].message.content == vllm.answer(FT_C)
    assert len([b for b in vllm.calls_to("/v1/load_lora_adapter") if b["lora_name"] == FT_C]) == 2


def test_deleting_a_fine_tuned_model_unloads_it_from_vllm(env):
    _, vllm, _, _ = env
    client = _client(env)
    client.chat.completions.create(model=FT_B, messages=ASK)
    with pytest.raises(openai.NotFoundError):  # another project cannot delete it (nor unload it)
        _client(env, "other").models.delete(FT_B)
    assert FT_B in vllm.loaded
    assert client.models.delete(FT_B).deleted is True
    assert vllm.calls_to("/v1/unload_lora_adapter")[-1] == {"lora_name": FT_B} and FT_B not in vllm.loaded
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=FT_B, messages=ASK)


def test_errors_are_openai_shaped_and_leak_no_urls_or_paths(env):
    server, vllm, keys, settings = env
    client = _client(env)
    for model in (DEAD_BASE, FT_DEAD):  # vLLM down: 503, the client may retry
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model=model, messages=ASK)
        assert err.value.status_code == 503 and err.value.code == "backend_unavailable"
        assert "vLLM server" in err.value.message and "127.0.0.1" not in err.value.message
    with pytest.raises(openai.InternalServerError) as err:  # vLLM refuses the adapter, naming its folder
        client.chat.completions.create(model=FT_BROKEN, messages=ASK)
    assert err.value.status_code == 502 and err.value.code == "adapter_load_failed"
    assert FT_BROKEN in err.value.message and "No adapter found" in err.value.message
    assert str(settings.data_dir) not in json.dumps(err.value.body) and "/adapters/" not in err.value.message
    with pytest.raises(openai.NotFoundError) as err:  # weights gone from the data dir: nothing sent to vLLM
        client.chat.completions.create(model=FT_NO_WEIGHTS, messages=ASK)
    assert err.value.code == "model_not_found" and str(settings.data_dir) not in err.value.message
    assert FT_NO_WEIGHTS not in [b["lora_name"] for b in vllm.calls_to("/v1/load_lora_adapter")]
    calls = len(vllm.calls)
    with pytest.raises(openai.BadRequestError) as err:  # tuneforge's own validation comes first
        client.chat.completions.create(model=BASE, messages=ASK, temperature=5)
    assert err.value.param == "temperature" and len(vllm.calls) == calls
    # vLLM's own error (here: a model it does not know) in OpenAI's terms, not vLLM's exception names
    response = httpx.post(server.base_url + "/completions", headers={"Authorization": f"Bearer {keys['default']}"},
                          json={"model": BASE, "prompt": "x"})
    assert response.status_code == 200
    vllm.base_model = "renamed"  # the server no longer serves the configured name
    try:
        with pytest.raises(openai.NotFoundError) as err:
            client.completions.create(model=BASE, prompt="x")
    finally:
        vllm.base_model = BASE
    assert err.value.body["type"] == "invalid_request_error" and err.value.code == "model_not_found"
    assert "aliases" not in err.value.message and FT_OTHER not in err.value.message  # vLLM lists every name


def test_the_gateway_decides_local_upstream_or_vllm(env):
    from tuneforge.gateway import Gateway
    from tuneforge.models.catalog import ServedModel

    server, _, _, _ = env
    gateway = server.app.state.tuneforge.gateway

    def lookup(model):
        return ServedModel(model, model, None, "system", 0)

    assert gateway.route(BASE, lookup).backend == "vllm"
    assert gateway.route(LOCAL_BASE, lookup).backend == "local"
    upstream = Gateway(json.dumps([{"name": "p", "models": [BASE], "base_url": "http://127.0.0.1:9/v1"}]),
                       vllm_servers=json.dumps({BASE: "http://127.0.0.1:9"}))
    assert upstream.route(BASE, lookup).backend == "upstream"  # an upstream pattern wins

    def never(model):
        raise AssertionError("no lookup without vLLM servers")

    assert Gateway(None).route(BASE, never).backend == "local"


def test_local_models_still_use_the_built_in_engine(env):
    _, vllm, _, _ = env
    calls = len(vllm.calls)
    out = _client(env).chat.completions.create(model=LOCAL_BASE, messages=ASK, max_tokens=2)
    assert out.model == LOCAL_BASE and out.system_fingerprint.startswith("fp_")  # the engine's, not vLLM's
    assert len(vllm.calls) == calls


def test_vllm_servers_setting_is_validated():
    from tuneforge.errors import ServerError
    from tuneforge.gateway import Gateway, parse_vllm_servers

    servers = parse_vllm_servers(json.dumps({"a": "http://h:1", "b": {"url": "http://h:2/v1/", "api_key": "k"}}))
    assert servers["a"].url("models") == "http://h:1/v1/models" and servers["b"].base_url == "http://h:2/v1"
    assert "k" not in repr(servers["b"]) and servers["b"].backend == "vllm"
    for bad in ('["http://h:1"]', '{"a": 3}', '{"a": ""}'):
        with pytest.raises(ServerError):
            _ = Gateway(None, vllm_servers=bad).vllm_servers
