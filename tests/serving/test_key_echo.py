"""Issue #10 F12/F8: an upstream (or a proxy) that echoes the Authorization header in its errors never gets
the key back to a client or into the database; an unreachable upstream answers 502 on every path.

The upstream here is a real HTTP server on loopback that answers every request 401 with the request's
Authorization header in the message (as JSON on /json, as plain text on /text).
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

SK_KEY = "sk-proj-UPSTREAMsecret0123456789abcdef"
PLAIN_KEY = "plainUpstreamSecret42"  # not shaped like a key: only the configured-secret rule catches it
ASK = [{"role": "user", "content": "hi"}]


class _Echo(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        auth = self.headers.get("authorization", "")
        if self.path.startswith("/text"):
            body, ctype = f"401 Unauthorized: bad credentials {auth}".encode(), "text/plain"
        else:
            body = json.dumps({"error": {"message": f"Incorrect API key provided: {auth}.", "type": "auth",
                                         "param": auth, "code": "invalid_api_key"}}).encode()
            ctype = "application/json"
        self.send_response(401)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def echo_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def server(make_settings, live_server, echo_url):
    config = [{"name": "echo-json", "models": ["ej-*"], "base_url": echo_url + "/json/v1", "api_key": SK_KEY},
              {"name": "echo-text", "models": ["et-*"], "base_url": echo_url + "/text/v1", "api_key": PLAIN_KEY},
              {"name": "dead", "models": ["dead-*"], "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-deadkey123"}]
    settings = make_settings(upstreams=json.dumps(config), upstream_timeout_s=10)
    with live_server(settings) as srv:
        srv.settings = settings
        yield srv


def _clean(text: str) -> None:
    assert SK_KEY not in text and PLAIN_KEY not in text and "UPSTREAMsecret" not in text, text


def _db_text(settings) -> str:
    con = sqlite3.connect(settings.resolved_database_url.removeprefix("sqlite:///"))
    try:
        return json.dumps([con.execute("SELECT last_error FROM runs").fetchall(),
                           con.execute("SELECT error FROM fine_tuning_jobs").fetchall()])
    finally:
        con.close()


@pytest.mark.parametrize("model", ["ej-model", "et-model"])
def test_no_path_echoes_the_upstream_key(server, model):
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-local", max_retries=0)
    calls = {
        "chat": lambda: client.chat.completions.create(model=model, messages=ASK, max_tokens=2),
        "chat stream": lambda: list(client.chat.completions.create(model=model, messages=ASK, max_tokens=2,
                                                                   stream=True)),
        "completions": lambda: client.completions.create(model=model, prompt="hi", max_tokens=2),
        "embeddings": lambda: client.embeddings.create(model=model, input="hi"),
        "fine-tuning": lambda: client.fine_tuning.jobs.create(model=model, training_file=client.files.create(
            file=("t.jsonl", io.BytesIO(b'{"messages": []}\n')), purpose="fine-tune").id),
    }
    for name, call in calls.items():
        with pytest.raises(openai.APIStatusError) as err:
            call()
        assert err.value.status_code == 401, (name, err.value)
        _clean(json.dumps(err.value.body) + err.value.message)
    compat = httpx.post(server.root_url + "/chat", json={"text": "hi", "model": model})
    assert compat.status_code == 401
    _clean(compat.text)

    assistant = client.beta.assistants.create(model=model)
    thread = client.beta.threads.create(messages=ASK)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                   poll_interval_ms=100)
    assert run.status == "failed" and run.last_error is not None
    _clean(run.last_error.message)
    _clean(client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).model_dump_json())
    _clean(_db_text(server.settings))


def test_kb_ask_maps_upstream_failures_like_chat(server):
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-local", max_retries=0)
    file_id = client.files.create(file=("notes.md", io.BytesIO(b"# Notes\n\nThe sky is blue.\n")),
                                  purpose="assistants").id
    store = client.vector_stores.create(name="notes", file_ids=[file_id])
    deadline = time.monotonic() + 120
    while client.vector_stores.retrieve(store.id).status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.1)
    with pytest.raises(openai.APIStatusError) as chat_err:
        client.chat.completions.create(model="dead-model", messages=ASK)
    ask = httpx.post(server.root_url + "/kb/ask", json={"text": "What colour is the sky?", "kb": "notes",
                                                        "model": "dead-model"}, timeout=120)
    assert chat_err.value.status_code == 502
    assert ask.status_code == 502, ask.text
    assert ask.json()["error"]["code"] == chat_err.value.code == "upstream_unavailable"
    echoed = httpx.post(server.root_url + "/kb/ask", json={"text": "What colour is the sky?", "kb": "notes",
                                                           "model": "ej-model"}, timeout=120)
    assert echoed.status_code == 401
    _clean(echoed.text)
