"""Shared fixtures: a fresh data dir per test, the app in process, a real uvicorn on loopback.

Converted base-model weights are cached once per test session (SmolLM2's GGUF conversion takes
~20 s), shared by every test's data dir through ``models_cache_dir``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from tuneforge.testing import live_server as live_server_cm

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
        with live_server_cm(settings) as server:
            def make(api_key="sk-test"):
                return OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0)
            make.mode = "uvicorn"
            make.settings = settings
            yield make


@pytest.fixture
def live_server():
    """``with live_server(settings) as server:`` runs a real uvicorn for the block."""
    return live_server_cm


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random Llama chat model (hidden 256, 4 layers) with a ChatML BPE tokenizer, built once."""
    from tuneforge.models_zoo.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster for the whole session (its server URL, no database); skipped only
    where no PostgreSQL server binaries exist (CI installs Debian's ``postgresql``, see ``.ci/run``)."""
    from tuneforge.testing import PostgresUnavailable, postgres_cluster

    try:
        cluster = postgres_cluster()
        url = cluster.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database on the session's PostgreSQL cluster (one per test)."""
    from uuid import uuid4

    from tuneforge.testing import create_database

    return create_database(postgres_server, f"tf_{uuid4().hex[:12]}")
