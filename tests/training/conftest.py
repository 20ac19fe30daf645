"""Fixtures for training tests: a real server (uvicorn) with a fast-polling in-process worker and
the tiny random chat model registered as ``tiny-chat``."""

from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import register_tiny  # noqa: E402


@pytest.fixture
def train_settings(make_settings):
    # One torch thread: on a shared CI machine, OpenMP threads competing with other processes for
    # the same cores spin and stall (measured: tiny-model steps 40x slower with 2 threads on 2 busy cores).
    return make_settings(worker_poll_s=0.2, train_threads=1)


@pytest.fixture
def tiny_server(train_settings, live_server, tiny_model_dir):
    """(client, server) with ``tiny-chat`` registered and a worker running in the server."""
    with live_server(train_settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        register_tiny(client, tiny_model_dir)
        yield client, server
