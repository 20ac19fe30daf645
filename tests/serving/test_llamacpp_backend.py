"""llama.cpp as the serving backend of a GGUF base model and its fine-tuned adapters: tuneforge starts,
supervises and replaces llama-server processes, converts each adapter once, selects it per request, and keeps
the OpenAI contract. Against a stand-in build (``llamacpp_standin``: real child processes on loopback), through
a real tuneforge server and the openai SDK.

The real llama.cpp is exercised by ``test_llamacpp_real.py`` (marker ``llamacpp``, opt-in)."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from llamacpp_standin import conversions, make_home, requests, starts
from serving_support import Server, register_stand_in_adapters

BASE = "tiny-gguf"  # a base served by llama.cpp (the stand-in never reads its weights)
LOCAL_BASE = "tiny-local"  # a base on the built-in engine
FT_A = f"ft:{BASE}:default:a:ftjob-a"
FT_B = f"ft:{BASE}:default:b:ftjob-b"
FT_C = f"ft:{BASE}:default:c:ftjob-c"
FT_D = f"ft:{BASE}:default:d:ftjob-d"
FT_BROKEN = f"ft:{BASE}:default:broken:ftjob-broken"
FT_NO_WEIGHTS = f"ft:{BASE}:default:noweights:ftjob-noweights"
FT_OTHER = f"ft:{BASE}:other:secret:ftjob-other"
ASK = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def env(tmp_path_factory, models_cache, tiny_model_dir):
    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.settings import Settings

    root = tmp_path_factory.mktemp("llamacpp")
    home = make_home(root / "home")
    gguf = root / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    models = {BASE: {"gguf": str(gguf), "threads": 1, "parallel": 2, "ctx_size": 512}}
    settings = Settings(data_dir=root / "data", models_cache_dir=models_cache, llamacpp_models=json.dumps(models),
                        llamacpp_dir=home, upstream_timeout_s=30)
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    registry = ModelRegistry(settings, db)
    registry.register(BASE, str(tiny_model_dir), None)
    registry.register(LOCAL_BASE, str(tiny_model_dir), None)
    keys = register_stand_in_adapters(db, settings, BASE, [(ft, "default", BASE) for ft in (FT_A, FT_B, FT_C, FT_D)]
                                      + [(FT_OTHER, "other", BASE)])
    db.dispose()
    server = Server(settings).start()
    servers = server.app.state.tuneforge.gateway.llamacpp
    servers.drain_s = 0.5  # replaced servers stop quickly here
    try:
        yield server, keys, settings, home, servers
    finally:
        server.stop()


def _client(env, project="default"):
    server, keys, _, _, _ = env
    return openai.OpenAI(base_url=server.base_url, api_key=keys[project], max_retries=0, timeout=60)


def test_base_and_fine_tuned_models_are_answered_by_llamacpp(env):
    _, _, _, home, servers = env
    client = _client(env)
    base = client.chat.completions.create(model=BASE, messages=ASK, max_tokens=8)
    assert base.model == BASE and base.choices[0].message.content == f"[{BASE}]"
    assert base.usage.total_tokens == 5 and base.system_fingerprint == "b1-stand-in"
    first = starts(home)[0]
    assert first["alias"] == BASE and first["threads"] == "1" and first["parallel"] == "2"
    assert first["ctx_size"] == "1024" and first["host"] == "127.0.0.1" and first["lora"] == []

    tuned = client.chat.completions.create(model=FT_A, messages=ASK, max_tokens=8)
    assert tuned.model == FT_A and tuned.choices[0].message.content == f"[{BASE}+lora:a]"
    text = client.completions.create(model=FT_A, prompt="Hello", max_tokens=8)
    assert text.model == FT_A and text.choices[0].text == f"[{BASE}+lora:a]"
    # the server was replaced by one that has the adapter, loaded unapplied; requests pick it by id
    last = starts(home)[-1]
    assert len(last["lora"]) == 1 and last["lora_init_without_apply"] is True
    sent = requests(home)[-1]["body"]
    assert sent["model"] == BASE and sent["lora"] == [{"id": 0, "scale": 1.0}] and sent["prompt"] == "Hello"
    # a base request names the adapter's scale 0 (a request without "lora" could reuse an adapter's cache)
    assert client.chat.completions.create(model=BASE, messages=ASK).choices[0].message.content == f"[{BASE}]"
    assert requests(home)[-1]["body"]["lora"] == [{"id": 0, "scale": 0.0}]


def test_a_new_adapter_replaces_the_server_and_the_old_one_drains(env):
    _, _, _, home, servers = env
    client = _client(env)
    client.chat.completions.create(model=FT_A, messages=ASK)
    old = servers.running(BASE)
    answer = client.chat.completions.create(model=FT_C, messages=ASK).choices[0].message.content
    assert answer == f"[{BASE}+lora:c]"
    new = servers.running(BASE)
    assert new.port != old.port and [f.name for f in new.loras][-1] == FT_C and FT_A in [f.name for f in new.loras]
    # both adapters on one server now: switching between them starts nothing
    count = servers.starts
    assert client.chat.completions.create(model=FT_A, messages=ASK).choices[0].message.content == f"[{BASE}+lora:a]"
    assert servers.starts == count
    deadline = time.monotonic() + 15
    while old.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not old.alive()  # stopped after its drain time
    assert conversions(home).count("a") == 1  # converted once, reused by every later server


def test_concurrent_first_requests_convert_and_restart_once(env):
    _, _, _, home, servers = env
    client = _client(env)
    client.chat.completions.create(model=BASE, messages=ASK)
    count = servers.starts
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client.chat.completions.create(
            model=FT_D, messages=ASK).choices[0].message.content, range(8)))
    assert answers == [f"[{BASE}+lora:d]"] * 8
    assert conversions(home).count("d") == 1 and servers.starts == count + 1


def test_streaming_names_the_requested_model_in_every_chunk(env):
    client = _client(env)
    chunks = list(client.chat.completions.create(model=FT_A, messages=ASK, max_tokens=8, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"[{BASE}+lora:a]"
    assert {c.model for c in chunks} == {FT_A} and chunks[-1].usage.completion_tokens == 2
    pieces = list(client.completions.create(model=BASE, prompt="Hello", max_tokens=8, stream=True))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == f"[{BASE}]"
    assert {p.model for p in pieces} == {BASE}


def test_projects_only_reach_their_own_fine_tuned_models(env):
    _, _, _, home, _ = env
    before = len(requests(home))
    for project, model in (("other", FT_A), ("default", FT_OTHER)):
        with pytest.raises(openai.NotFoundError) as err:
            _client(env, project).chat.completions.create(model=model, messages=ASK)
        assert err.value.code == "model_not_found" and model in err.value.message
    assert len(requests(home)) == before
    own = _client(env, "other").chat.completions.create(model=FT_OTHER, messages=ASK)
    assert own.choices[0].message.content == f"[{BASE}+lora:secret]" and own.model == FT_OTHER


def test_the_server_port_refuses_requests_without_tuneforge_key(env):
    _, _, _, _, servers = env
    _client(env).chat.completions.create(model=BASE, messages=ASK)
    url = f"http://127.0.0.1:{servers.running(BASE).port}/v1/chat/completions"
    assert httpx.post(url, json={"messages": ASK}).status_code == 401  # ownership checks cannot be bypassed


def test_a_dead_server_is_started_again(env):
    _, _, _, _, servers = env
    client = _client(env)
    client.chat.completions.create(model=FT_A, messages=ASK)
    dead = servers.running(BASE)
    dead.proc.kill()
    dead.proc.wait()
    answer = client.chat.completions.create(model=FT_A, messages=ASK).choices[0].message.content
    assert answer == f"[{BASE}+lora:a]" and servers.running(BASE).port != dead.port


def test_a_retrained_adapter_is_converted_again(env):
    _, _, settings, home, servers = env
    client = _client(env)
    client.chat.completions.create(model=FT_B, messages=ASK)
    weights = settings.data_dir / "adapters" / "b" / "adapter_model.safetensors"
    weights.write_bytes(b"new weights, new size")
    os.utime(weights, ns=(time.time_ns(), time.time_ns()))
    count = conversions(home).count("b")
    assert client.chat.completions.create(model=FT_B, messages=ASK).choices[0].message.content == f"[{BASE}+lora:b]"
    assert conversions(home).count("b") == count + 1
    assert [f.name for f in servers.running(BASE).loras].count(FT_B) == 1  # the old weights were dropped


def test_deleting_a_fine_tuned_model_leaves_it_out_of_the_next_server(env):
    _, _, _, _, servers = env
    client = _client(env)
    client.chat.completions.create(model=FT_C, messages=ASK)
    assert client.models.delete(FT_C).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=FT_C, messages=ASK)
    servers.running(BASE).proc.kill()
    servers.running(BASE).proc.wait()
    client.chat.completions.create(model=BASE, messages=ASK)
    assert FT_C not in [f.name for f in servers.running(BASE).loras]


def test_models_say_which_backend_serves_them(env):
    client = _client(env)
    listed = {m.id: m.model_extra["tuneforge"] for m in client.models.list()}
    assert listed[BASE]["backend"] == "llamacpp" and listed[FT_A]["backend"] == "llamacpp"
    assert "backend" not in listed[LOCAL_BASE]


def test_errors_are_openai_shaped_and_leak_no_paths(env):
    _, _, settings, home, _ = env
    client = _client(env)
    with pytest.raises(openai.InternalServerError) as err:  # the converter refuses a folder without config
        client.chat.completions.create(model=FT_BROKEN, messages=ASK)
    assert err.value.status_code == 502 and err.value.code == "adapter_load_failed"
    assert FT_BROKEN in err.value.message and "FileNotFoundError" in err.value.message
    assert str(settings.data_dir) not in json.dumps(err.value.body)
    with pytest.raises(openai.NotFoundError) as err:  # weights gone: nothing converted, nothing sent
        client.chat.completions.create(model=FT_NO_WEIGHTS, messages=ASK)
    assert err.value.code == "model_not_found" and str(settings.data_dir) not in err.value.message
    assert "noweights" not in conversions(home)
    calls = len(requests(home))
    with pytest.raises(openai.BadRequestError) as err:  # tuneforge's own validation comes first
        client.chat.completions.create(model=BASE, messages=ASK, temperature=5)
    assert err.value.param == "temperature" and len(requests(home)) == calls
    with pytest.raises(openai.BadRequestError) as err:  # llama-server's own error, in OpenAI's terms
        client.chat.completions.create(model=BASE, messages=ASK, max_tokens=999999)
    assert err.value.code == "llamacpp_error" and err.value.body["type"] == "invalid_request_error"
    assert "bad max_tokens" in err.value.message and str(home) not in err.value.message


def test_local_models_still_use_the_built_in_engine(env):
    _, _, _, home, _ = env
    calls = len(requests(home))
    out = _client(env).chat.completions.create(model=LOCAL_BASE, messages=ASK, max_tokens=2)
    assert out.model == LOCAL_BASE and out.system_fingerprint.startswith("fp_")
    assert len(requests(home)) == calls


def test_a_missing_build_is_a_503_not_a_500(tmp_path):
    from tuneforge.gateway import Gateway
    from tuneforge.gateway.errors import UpstreamError
    from tuneforge.models.catalog import ServedModel

    class Registry:
        def resolve(self, name):
            return type("Info", (), {"location": str(gguf)})()

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    gateway = Gateway(None, llamacpp_models=json.dumps(["m"]), llamacpp_home=tmp_path / "nothing",
                      work_dir=tmp_path, registry=Registry())
    with pytest.raises(UpstreamError) as err:
        gateway.route("m", lambda model: ServedModel(model, model, None, "system", 0))
    assert err.value.status_code == 503 and err.value.code == "backend_unavailable"
    assert "scripts/llamacpp.sh" in str(err.value) and str(tmp_path) not in str(err.value)


def test_llamacpp_models_setting_is_validated():
    from tuneforge.errors import ServerError
    from tuneforge.gateway import Gateway
    from tuneforge.gateway.llamacpp import parse_llamacpp_models

    models = parse_llamacpp_models(json.dumps({"a": {"threads": 2, "parallel": 8, "args": ["--flash-attn", "on"]},
                                               "b": {}}))
    assert models["a"].threads == 2 and models["a"].parallel == 8 and models["a"].args == ("--flash-attn", "on")
    assert models["b"].parallel == 8 and models["b"].ctx_size == 2048 and models["b"].threads is None
    assert list(parse_llamacpp_models('["x", "y"]')) == ["x", "y"]
    for bad in ('{"a": 3}', '{"a": {"parallel": 0}}', '{"a": {"thread": 2}}', '{"a": {"args": "--x"}}', '"a"'):
        with pytest.raises(ServerError):
            _ = Gateway(None, llamacpp_models=bad).llamacpp
