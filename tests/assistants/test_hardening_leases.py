"""Issue #10: assistants runs are claimed with leases and heartbeats, like training jobs. A second server
on the same database leaves the first one's runs alone; a run whose server stopped is failed once its lease
lapses; a run in progress longer than ``run_max_s`` expires."""

from __future__ import annotations

import time

import openai
import pytest


def _client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def _start_long_run(client):
    """A run without a budget on the tiny model: it generates until the context limit (well over a second)."""
    assistant = client.beta.assistants.create(model="tiny-chat", instructions="Talk.")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me everything."}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, temperature=0)
    deadline = time.monotonic() + 120
    while run.status == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
        run = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "in_progress", run
    return thread.id, run.id


def _wait(client, thread_id, run_id, timeout=120):
    deadline = time.monotonic() + timeout
    run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
    while run.status in ("queued", "in_progress", "cancelling") and time.monotonic() < deadline:
        time.sleep(0.1)
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
    return run


@pytest.fixture
def with_tiny(make_settings, tiny_model_dir):
    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry

    def make(**overrides):
        settings = make_settings(**overrides)
        settings.ensure_dirs()
        db = Database(settings.resolved_database_url)
        db.migrate()
        registry = ModelRegistry(settings, db)
        if registry.find("tiny-chat") is None:
            registry.register("tiny-chat", str(tiny_model_dir), None)
        db.dispose()
        return settings
    return make


def test_a_second_server_leaves_running_runs_alone(with_tiny, live_server):
    settings = with_tiny()
    with live_server(settings) as first:
        client = _client(first)
        thread_id, run_id = _start_long_run(client)
        with live_server(settings) as second:  # starts up (recover) while the run is in progress
            assert _client(second).beta.threads.runs.retrieve(run_id, thread_id=thread_id).status == "in_progress"
        client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
        assert _wait(client, thread_id, run_id).status == "cancelled"


def test_a_run_whose_server_stopped_fails_once_its_lease_lapses(with_tiny, live_server):
    import json

    from tuneforge.db.models import RunRow
    from tuneforge.db.session import Database

    settings = with_tiny(run_lease_s=0.5)
    with live_server(settings) as first:
        thread_id, run_id = _start_long_run(_client(first))
    # a clean stop fails what its engine was still generating (nothing waits for it after the process ends)
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as session:
            row = session.get(RunRow, run_id)
            assert row.status == "failed" and "shutting down" in json.loads(row.last_error)["message"]
            # now as if that server had been killed mid-run: still in progress, its lease no longer renewed
            row.status, row.last_error, row.failed_at = "in_progress", None, None
            row.worker_id, row.lease_expires_at = "run-worker-that-died", time.time() - 1
            session.commit()
    finally:
        db.dispose()
    with live_server(settings) as second:
        run = _wait(_client(second), thread_id, run_id)
    assert run.status == "failed" and "stopped" in run.last_error.message


def test_a_run_longer_than_the_limit_expires(with_tiny, live_server):
    settings = with_tiny(run_max_s=1, run_lease_s=0.3)
    with live_server(settings) as server:
        client = _client(server)
        thread_id, run_id = _start_long_run(client)
        run = _wait(client, thread_id, run_id)
    assert run.status == "expired"


def test_a_second_server_leaves_queued_runs_reserved_by_the_first_alone(with_tiny, live_server):
    """A queued run is reserved by the server that created it (a lease it renews): another server starting
    up or sweeping does not take it — so a run streamed from its server is not run elsewhere."""
    from tuneforge.db.models import RunRow
    from tuneforge.db.session import Database

    settings = with_tiny()
    with live_server(settings) as first:
        client = _client(first)
        busy = [_start_long_run(client) for _ in range(2)]  # the executor's two workers are taken
        assistant = client.beta.assistants.create(model="tiny-chat", instructions="Talk.")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "Wait your turn."}])
        waiting = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
        db = Database(settings.resolved_database_url)
        try:
            with live_server(settings) as second:
                time.sleep(0.5)  # its start-up sweep has run
                with db.session() as session:
                    row = session.get(RunRow, waiting.id)
                    assert row.status == "queued" and row.worker_id == first.app.state.tuneforge.runs.id
                    assert row.worker_id != second.app.state.tuneforge.runs.id
        finally:
            db.dispose()
        for thread_id, run_id in [*busy, (thread.id, waiting.id)]:
            client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
        assert _wait(client, thread.id, waiting.id).status == "cancelled"
