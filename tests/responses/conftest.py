"""Fixtures for the Responses/Conversations tests: a real uvicorn (tuneforge.testing.LiveServer) with the
tiny random chat model registered, and the official SDK as the client."""

from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "assistants"))  # kbhelpers: the knowledge-base files


@pytest.fixture
def server(settings, live_server):
    with live_server(settings) as srv:
        yield srv


@pytest.fixture
def client(server, tiny_model_dir):
    c = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    c.post("/models", body={"id": "tiny-chat", "path": str(tiny_model_dir)}, cast_to=openai.types.Model)
    return c
