"""Fixtures for the assistants/retrieval tests: in-process SDK clients and a small knowledge base."""

from __future__ import annotations

import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kbhelpers import REFUND, WARRANTY, app_client, upload, wait_store  # noqa: E402


@pytest.fixture
def client(settings):
    with app_client(settings) as c:
        yield c


@pytest.fixture
def tiny_client(settings, tiny_model_dir):
    with app_client(settings) as c:
        c.post("/models", body={"id": "tiny-chat", "path": str(tiny_model_dir)}, cast_to=openai.types.Model)
        yield c


@pytest.fixture
def kb(client):
    """A vector store with an English refund policy and a mixed Chinese/English warranty file."""
    refund, warranty = upload(client, "refund.md", REFUND), upload(client, "warranty.md", WARRANTY)
    store = client.vector_stores.create(name="kb", file_ids=[refund, warranty])
    wait_store(client, store.id)
    return {"store": store.id, "refund": refund, "warranty": warranty}
