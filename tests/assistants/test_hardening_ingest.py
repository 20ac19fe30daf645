"""Issue #10 F10/F11: ingestion is bounded (text without whitespace, per-file size and time budgets), fair
(one huge file never holds up a small one), and a failure never shows a server path."""

from __future__ import annotations

import random
import string
import time

import pytest
from kbhelpers import REFUND, app_client, upload

from tuneforge.retrieval.chunking import chunk_sections, encode, encoding


def _no_whitespace(n: int) -> str:
    rng = random.Random(0)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=n))


def _wait_file(client, store_id: str, file_id: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        vsf = client.vector_stores.files.retrieve(file_id, vector_store_id=store_id)
        if vsf.status != "in_progress":
            return vsf
        time.sleep(0.1)
    raise AssertionError(f"{file_id} still in progress")


def test_text_without_whitespace_is_cut_into_bounded_chunks():
    from tuneforge.data.documents import Section

    text = _no_whitespace(2_000_000)
    chunks = chunk_sections([Section(text=text)], max_tokens=800, overlap=0)
    assert chunks and all(c.tokens <= 800 for c in chunks)
    assert "".join(c.text for c in chunks) == text  # nothing lost, nothing repeated
    normal = REFUND * 20
    assert encode(normal) == encoding().encode_ordinary(normal)  # ordinary text: the exact tokens


def test_files_over_the_size_budget_fail_with_last_error(make_settings):
    with app_client(make_settings(ingest_max_file_bytes=1000)) as client:
        big = upload(client, "big.txt", "word " * 400)
        small = upload(client, "refund.md", REFUND)
        store = client.vector_stores.create(name="kb", file_ids=[big, small])
        failed = _wait_file(client, store.id, big)
        assert failed.status == "failed" and failed.last_error.code == "invalid_file"
        assert "2000 bytes" in failed.last_error.message
        assert _wait_file(client, store.id, small).status == "completed"


def test_files_over_the_time_budget_fail_with_last_error(make_settings):
    with app_client(make_settings(ingest_file_timeout_s=0)) as client:
        file_id = upload(client, "refund.md", REFUND)
        store = client.vector_stores.create(name="kb", file_ids=[file_id])
        failed = _wait_file(client, store.id, file_id)
        assert failed.status == "failed" and "time budget" in failed.last_error.message


def test_a_huge_file_does_not_hold_up_a_small_one(make_settings):
    with app_client(make_settings(ingest_workers=2)) as client:
        huge = upload(client, "blob.txt", _no_whitespace(1_000_000))  # ~1,800 chunks to embed
        small = upload(client, "refund.md", REFUND)
        store = client.vector_stores.create(name="kb")
        client.vector_stores.files.create(vector_store_id=store.id, file_id=huge)
        client.vector_stores.files.create(vector_store_id=store.id, file_id=small)
        assert _wait_file(client, store.id, small).status == "completed"
        assert client.vector_stores.files.retrieve(huge, vector_store_id=store.id).status == "in_progress"
        client.vector_stores.files.delete(huge, vector_store_id=store.id)  # stops it at the next batch


@pytest.mark.parametrize("name", ["..", ".", "", "../../notes.md"])
def test_odd_display_names_read_as_plain_files(tmp_path, name):
    from tuneforge.retrieval.ingest import read_sections

    blob = tmp_path / "blob"
    blob.write_text("# Title\n\nSome text.\n")
    sections = read_sections(blob, name)
    assert "Some text." in " ".join(s.text for s in sections)


def test_deleting_a_file_removes_it_from_every_vector_store(client):
    refund = upload(client, "refund.md", REFUND)
    other = upload(client, "other.md", "# Other\n\nSomething else entirely.\n")
    stores = [client.vector_stores.create(name=f"kb{i}", file_ids=[refund, other]).id for i in range(2)]
    for store_id in stores:
        _wait_file(client, store_id, refund)
        _wait_file(client, store_id, other)
    before = [client.vector_stores.retrieve(s).usage_bytes for s in stores]
    assert client.files.delete(refund).deleted
    for store_id, usage in zip(stores, before, strict=True):
        store = client.vector_stores.retrieve(store_id)
        assert 0 < store.usage_bytes < usage and store.file_counts.total == 1
        assert [f.id for f in client.vector_stores.files.list(store_id)] == [other]
        hits = client.vector_stores.search(store_id, query="refund within 45 days")
        assert all(h.file_id != refund for h in hits.data)
