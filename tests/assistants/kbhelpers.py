"""Helpers shared by the assistants/retrieval tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import time
from contextlib import contextmanager

import openai

REFUND = ("# Refund policy\n\nYou can ask for a refund within 45 days of purchase if you keep the receipt. "
          "Refunds go back to the original card.\n\n## Gift cards\n\nGift cards cannot be refunded.\n")
WARRANTY = ("# 保修政策\n\n本产品整机保修两年，电池保修一年。人为损坏不在保修范围内。\n\n"
            "# Shipping\n\nOrders ship within 2 business days from our warehouse in Lyon.\n")


def wait_store(client: openai.OpenAI, store_id: str, timeout: float = 120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        store = client.vector_stores.retrieve(store_id)
        if store.status != "in_progress":
            return store
        time.sleep(0.1)
    raise AssertionError(f"vector store {store_id} still in progress")


def upload(client: openai.OpenAI, name: str, data: str | bytes) -> str:
    return client.files.create(file=(name, data.encode() if isinstance(data, str) else data),
                               purpose="assistants").id


@contextmanager
def app_client(settings, api_key: str = "sk-test"):
    """The SDK talking to the app in process; the TestClient runs the lifespan (workers included)."""
    from fastapi.testclient import TestClient

    from tuneforge.api.app import build_app

    with TestClient(build_app(settings)) as http:
        yield openai.OpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0)
