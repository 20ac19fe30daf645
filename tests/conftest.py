"""Shared fixtures: a fresh data dir per test, the app in process, a real uvicorn on loopback.

Converted base-model weights are cached once per test session (SmolLM2's GGUF conversion takes
~20 s), shared by every test's data dir through ``models_cache_dir``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def models_cache(tmp_path_factory) -> Path:
    shared = os.environ.get("TUNEFORGE_TEST_MODELS_CACHE")
    if shared:
        Path(shared).mkdir(parents=True, exist_ok=True)
        return Path(shared)
    return tmp_path_factory.mktemp("models-cache")


@pytest.fixture
def make_settings(tmp_path, models_cache):
    from tuneforge.settings import Settings

    def _make(**overrides):
        values = {"data_dir": tmp_path / "data", "models_cache_dir": models_cache}
        values.update(overrides)
        return Settings(**values)

    return _make


@pytest.fixture
def settings(make_settings):
    return make_settings()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real uvicorn serving the app on 127.0.0.1 in a background thread."""

    def __init__(self, settings):
        import uvicorn

        from tuneforge.api.app import build_app

        self.settings = settings
        self.port = free_port()
        self.app = build_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def _live_server(settings) -> Iterator[LiveServer]:
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def inprocess_client(settings, api_key: str = "sk-test", **kwargs):
    """The official SDK talking to the app in process (Starlette's TestClient is an httpx.Client)."""
    from fastapi.testclient import TestClient
    from openai import OpenAI

    from tuneforge.api.app import build_app

    with TestClient(build_app(settings)) as http:
        yield OpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0, **kwargs)


@pytest.fixture(params=["inprocess", "uvicorn"])
def sdk(request, settings):
    """Factory of SDK clients for one server, parametrised over in-process ASGI and real uvicorn."""
    from openai import OpenAI

    if request.param == "inprocess":
        from fastapi.testclient import TestClient

        from tuneforge.api.app import build_app

        with TestClient(build_app(settings)) as http:
            def make(api_key="sk-test"):
                return OpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0)
            make.mode = "inprocess"
            make.settings = settings
            yield make
    else:
        with _live_server(settings) as server:
            def make(api_key="sk-test"):
                return OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0)
            make.mode = "uvicorn"
            make.settings = settings
            yield make


@pytest.fixture
def live_server():
    """``with live_server(settings) as server:`` runs a real uvicorn for the block."""
    return _live_server


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random Llama chat model (hidden 256, 4 layers) with a ChatML BPE tokenizer, built once."""
    from tuneforge.models_zoo.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
