"""Vector stores through the official SDK: lifecycle, ingestion outcomes, search, isolation, restart."""

from __future__ import annotations

import threading

import openai
import pytest
from kbhelpers import REFUND, WARRANTY, app_client, upload, wait_store


def test_store_lifecycle_and_search(sdk, tmp_path):
    client = sdk()
    refund, warranty = upload(client, "refund.md", REFUND), upload(client, "warranty.md", WARRANTY)
    store = client.vector_stores.create(name="kb", file_ids=[refund], metadata={"team": "support"},
                                        expires_after={"anchor": "last_active_at", "days": 7})
    assert store.id.startswith("vs_") and store.status == "in_progress" and store.file_counts.total == 1
    vs_file = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=warranty,
                                                         attributes={"lang": "zh", "year": 2024})
    assert vs_file.status == "completed" and vs_file.usage_bytes > 0 and vs_file.last_error is None
    assert vs_file.chunking_strategy.static.max_chunk_size_tokens == 800
    store = wait_store(client, store.id)
    assert store.status == "completed"
    assert (store.file_counts.completed, store.file_counts.total) == (2, 2)
    assert store.usage_bytes > 0 and store.expires_after.days == 7 and store.expires_at > store.created_at

    hits = client.vector_stores.search(vector_store_id=store.id, query="how many days for a refund?").data
    assert hits[0].filename == "refund.md" and "45 days" in hits[0].content[0].text
    assert all(0 <= h.score <= 1 for h in hits) and hits[0].score >= hits[-1].score
    zh = client.vector_stores.search(vector_store_id=store.id, query="电池保修多久？", max_num_results=1).data
    assert [h.file_id for h in zh] == [warranty] and "电池保修一年" in zh[0].content[0].text
    assert zh[0].attributes == {"lang": "zh", "year": 2024}
    # attribute filters
    only_zh = client.vector_stores.search(vector_store_id=store.id, query="refund",
                                          filters={"type": "eq", "key": "lang", "value": "zh"}).data
    assert {h.file_id for h in only_zh} == {warranty}
    recent = client.vector_stores.search(vector_store_id=store.id, query="refund",
                                         filters={"type": "and", "filters": [
                                             {"type": "gte", "key": "year", "value": 2025}]}).data
    assert recent == []
    # a threshold of 1 keeps only a chunk ranked first by both retrievers
    strict = client.vector_stores.search(vector_store_id=store.id, query="refund receipt 45 days",
                                         ranking_options={"score_threshold": 1.0}).data
    assert [h.file_id for h in strict] == [refund]

    listed = client.vector_stores.files.list(vector_store_id=store.id, filter="completed")
    assert {f.id for f in listed.data} == {refund, warranty}
    content = client.vector_stores.files.content(file_id=refund, vector_store_id=store.id)
    assert "45 days" in " ".join(p.text for p in content.data)
    updated = client.vector_stores.update(store.id, name="renamed", metadata={"team": "sales"})
    assert updated.name == "renamed" and updated.metadata == {"team": "sales"}
    assert store.id in [s.id for s in client.vector_stores.list()]
    assert client.vector_stores.delete(store.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_chunking_strategy_validation(client):
    fid = upload(client, "a.md", "# A\n\nhello")
    bad = [{"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
           {"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
           {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101}},
           {"type": "other"}]
    for strategy in bad:
        with pytest.raises(openai.BadRequestError) as err:
            client.vector_stores.create(file_ids=[fid], chunking_strategy=strategy)
        assert err.value.body["param"].startswith("chunking_strategy")
    store = client.vector_stores.create(file_ids=[fid], chunking_strategy={
        "type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 50}})
    f = client.vector_stores.files.retrieve(file_id=fid, vector_store_id=store.id)
    assert f.chunking_strategy.static.chunk_overlap_tokens == 50


def test_static_chunks_are_bounded_and_overlap(client):
    text = "\n\n".join(f"Paragraph {i}: the quick brown fox number {i} jumps over the lazy dog." for i in range(120))
    fid = upload(client, "long.txt", text)
    store = client.vector_stores.create(file_ids=[fid], chunking_strategy={
        "type": "static", "static": {"max_chunk_size_tokens": 120, "chunk_overlap_tokens": 40}})
    wait_store(client, store.id)
    from tuneforge.retrieval.chunking import count_tokens

    chunks = [p.text for p in client.vector_stores.files.content(file_id=fid, vector_store_id=store.id).data]
    assert len(chunks) > 10
    assert all(count_tokens(c) <= 121 for c in chunks)
    for prev, nxt in zip(chunks, chunks[1:], strict=False):  # each chunk starts with the previous one's tail
        assert prev[-30:].strip() in nxt or nxt[:20].strip() in prev


def test_a_broken_file_fails_alone_in_a_batch(client):
    good = upload(client, "good.md", REFUND)
    broken = upload(client, "broken.pdf", b"%PDF-1.4 this is not really a pdf")
    unsupported = upload(client, "image.png", b"\x89PNG\r\n\x1a\n....")
    empty = upload(client, "empty.txt", "   \n")
    store = client.vector_stores.create(name="batch")
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[good, broken, unsupported, empty], poll_interval_ms=100)
    assert batch.id.startswith("vsfb_") and batch.status == "completed"
    assert (batch.file_counts.completed, batch.file_counts.failed, batch.file_counts.total) == (1, 3, 4)
    files = {f.id: f for f in client.vector_stores.file_batches.list_files(batch_id=batch.id,
                                                                            vector_store_id=store.id)}
    assert files[good].status == "completed"
    assert files[broken].last_error.code == "invalid_file" and "broken.pdf" in files[broken].last_error.message
    assert files[unsupported].last_error.code == "unsupported_file"
    assert files[empty].status == "failed" and "no text" in files[empty].last_error.message
    failed = client.vector_stores.file_batches.list_files(batch_id=batch.id, vector_store_id=store.id,
                                                          filter="failed")
    assert {f.id for f in failed} == {broken, unsupported, empty}
    hits = client.vector_stores.search(vector_store_id=store.id, query="refund").data
    assert {h.file_id for h in hits} == {good}


def test_cancel_a_batch_leaves_nothing_searchable(client, monkeypatch):
    from tuneforge.retrieval import embeddings

    gate, entered = threading.Event(), threading.Event()
    real = embeddings.embed_passages

    def blocked(texts, **kw):
        entered.set()
        assert gate.wait(30)
        return real(texts, **kw)

    monkeypatch.setattr(embeddings, "embed_passages", blocked)
    ids = [upload(client, f"doc{i}.md", f"# Doc {i}\n\nThe secret code of document {i} is ZEBRA{i}.") for i in range(3)]
    store = client.vector_stores.create(name="cancel-me")
    batch = client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=ids)
    assert entered.wait(30)  # the first file is being embedded
    cancelled = client.vector_stores.file_batches.cancel(batch_id=batch.id, vector_store_id=store.id)
    assert cancelled.status == "cancelled" and cancelled.file_counts.cancelled == 3
    gate.set()
    wait_store(client, store.id)
    monkeypatch.setattr(embeddings, "embed_passages", real)
    assert client.vector_stores.search(vector_store_id=store.id, query="secret code ZEBRA0").data == []
    assert {f.status for f in client.vector_stores.files.list(vector_store_id=store.id)} == {"cancelled"}


def test_deleting_a_file_removes_its_chunks(client, kb):
    query = "电池保修多久"
    assert kb["warranty"] in {h.file_id for h in client.vector_stores.search(vector_store_id=kb["store"],
                                                                              query=query).data}
    deleted = client.vector_stores.files.delete(file_id=kb["warranty"], vector_store_id=kb["store"])
    assert deleted.deleted and deleted.object == "vector_store.file.deleted"
    hits = client.vector_stores.search(vector_store_id=kb["store"], query=query).data
    assert kb["warranty"] not in {h.file_id for h in hits}
    assert client.vector_stores.retrieve(kb["store"]).file_counts.total == 1
    # deleting the File itself (not only its vector-store entry) also hides it from search
    client.files.delete(kb["refund"])
    assert client.vector_stores.search(vector_store_id=kb["store"], query="refund").data == []


def test_another_project_cannot_see_or_search_the_store(settings):
    from tuneforge.db.session import Database
    from tuneforge.projects import create_key

    with app_client(settings) as bootstrap:
        bootstrap.models.list()  # runs migrations
    db = Database(settings.resolved_database_url)
    with db.session() as session:
        key_a, _ = create_key(session, "alpha")
        key_b, _ = create_key(session, "beta")
    db.dispose()
    with app_client(settings, api_key=key_a) as a:
        fid = upload(a, "refund.md", REFUND)
        store = a.vector_stores.create(file_ids=[fid])
        wait_store(a, store.id)
        assert a.vector_stores.search(vector_store_id=store.id, query="refund").data
    with app_client(settings, api_key=key_b) as b:
        with pytest.raises(openai.NotFoundError):
            b.vector_stores.search(vector_store_id=store.id, query="refund")
        with pytest.raises(openai.NotFoundError):
            b.vector_stores.files.list(vector_store_id=store.id)
        own = b.vector_stores.create(name="mine")
        with pytest.raises(openai.NotFoundError):  # nor attach alpha's file to its own store
            b.vector_stores.files.create(vector_store_id=own.id, file_id=fid)
        assert store.id not in [s.id for s in b.vector_stores.list()]


def test_restart_does_not_re_embed(settings, monkeypatch):
    from tuneforge.retrieval import embeddings

    with app_client(settings) as client:
        fid = upload(client, "warranty.md", WARRANTY)
        store = client.vector_stores.create(file_ids=[fid])
        wait_store(client, store.id)
        before = client.vector_stores.search(vector_store_id=store.id, query="电池保修").data

    def refuse(*_a, **_k):
        raise AssertionError("passages were embedded again after a restart")

    monkeypatch.setattr(embeddings, "embed_passages", refuse)
    from tuneforge.retrieval.index import default_cache

    default_cache().drop(store.id)  # a new process starts with no index in memory
    with app_client(settings) as client:
        after = client.vector_stores.search(vector_store_id=store.id, query="电池保修").data
        assert [(h.file_id, h.content[0].text) for h in after] == [(h.file_id, h.content[0].text) for h in before]
        assert client.vector_stores.retrieve(store.id).status == "completed"
        # the same file in a second store reuses the stored vectors too
        again = client.vector_stores.create(file_ids=[fid])
        assert wait_store(client, again.id).file_counts.completed == 1


def test_bad_requests_use_the_openai_envelope(client, kb):
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=kb["store"], file_id="file-nope")
    with pytest.raises(openai.BadRequestError) as err:
        client.vector_stores.search(vector_store_id=kb["store"], query="x", max_num_results=51)
    assert err.value.body["param"] == "max_num_results"
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.search(vector_store_id=kb["store"], query="x", filters={"type": "like", "key": "a"})
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(expires_after={"anchor": "created_at", "days": 1})
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(metadata={"k": "v" * 600})
