"""Issue #10: assistants runs are claimed with leases and heartbeats, like training jobs. A second server
on the same database leaves the first one's runs alone; a server stopping cleanly hands its runs over; a run
whose server was killed is run again once its lease lapses (failed after ``max_takeovers``); a run in
progress longer than ``run_max_s`` expires."""

from __future__ import annotations

import json
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


def _as_if_killed(settings, run_id: str, **run_values) -> None:
    """Make a run look like its server was killed mid-answer: in progress with a lease no one renews, an
    assistant message and a message_creation step still in progress (empty: text is stored at the end)."""
    from tuneforge.db.models import MessageRow, RunRow, RunStepRow
    from tuneforge.db.session import Database
    from tuneforge.ids import new_id

    db = Database(settings.resolved_database_url)
    try:
        with db.session() as session:
            row = session.get(RunRow, run_id)
            row.status, row.last_error, row.failed_at = "in_progress", None, None
            row.worker_id, row.lease_expires_at = "run-worker-that-died", time.time() - 1
            for name, value in run_values.items():
                setattr(row, name, value)
            message = MessageRow(id=new_id("msg_"), thread_id=row.thread_id, project_id=row.project_id,
                                 role="assistant", content="[]", assistant_id=row.assistant_id, run_id=run_id,
                                 status="in_progress")
            session.add(message)
            session.add(RunStepRow(id=new_id("step_"), run_id=run_id, thread_id=row.thread_id,
                                   project_id=row.project_id, assistant_id=row.assistant_id, type="message_creation",
                                   status="in_progress", step_details=json.dumps(
                                       {"type": "message_creation", "message_creation": {"message_id": message.id}})))
            session.commit()
    finally:
        db.dispose()


def test_a_clean_stop_hands_runs_over_and_a_killed_servers_run_is_run_again(with_tiny, live_server):
    from tuneforge.db.models import MessageRow, RunRow, RunStepRow
    from tuneforge.db.session import Database

    settings = with_tiny(run_lease_s=0.5)
    with live_server(settings) as first:
        thread_id, run_id = _start_long_run(_client(first))
    # a clean stop queues the run again, unowned, for any server; its unfinished message and step are gone
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as session:
            row = session.get(RunRow, run_id)
            assert (row.status, row.worker_id, row.last_error) == ("queued", None, None)
            assert not session.query(MessageRow).filter(MessageRow.run_id == run_id).all()
            assert not session.query(RunStepRow).filter(RunStepRow.run_id == run_id).all()
    finally:
        db.dispose()
    _as_if_killed(settings, run_id, max_completion_tokens=8)  # now as if killed mid-answer (a short one this time)
    with live_server(settings) as second:
        client = _client(second)
        run = _wait(client, thread_id, run_id)
        assert run.status == "incomplete", run.last_error  # as without the kill: the budget of 8 spent
        # the dead attempt's empty message and step were discarded: one answer, every step finished
        answers = [m for m in client.beta.threads.messages.list(thread_id).data if m.role == "assistant"]
        assert len(answers) == 1 and answers[0].run_id == run_id and answers[0].status == "incomplete"
        assert answers[0].content[0].text.value
        steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id).data
        assert [(s.type, s.status) for s in steps] == [("message_creation", "completed")]
        assert steps[0].step_details.message_creation.message_id == answers[0].id
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as session:
            assert session.get(RunRow, run_id).takeovers == 1  # the kill counts, the clean stop does not
    finally:
        db.dispose()


def test_a_run_taken_over_too_often_fails(with_tiny, live_server):
    settings = with_tiny(run_lease_s=0.5, max_takeovers=1)
    with live_server(settings) as first:
        thread_id, run_id = _start_long_run(_client(first))
    _as_if_killed(settings, run_id, takeovers=1)  # its servers already died once
    with live_server(settings) as second:
        client = _client(second)
        run = _wait(client, thread_id, run_id)
        assert run.status == "failed" and "stopped 2 times" in run.last_error.message
        assert not [m for m in client.beta.threads.messages.list(thread_id).data if m.role == "assistant"]


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
