"""Issue #10: no hidden generation caps. Without a client budget a run generates to the end of the turn or
the context limit, and reports ``incomplete`` only for a budget the client set or the context limit."""

from __future__ import annotations

import json
import shutil

import openai
import pytest

CONTEXT = 300  # a short context keeps "generate to the limit" cheap on a CPU


@pytest.fixture
def short_client(tiny_client, tiny_model_dir, tmp_path):
    folder = tmp_path / "short"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = CONTEXT
    (folder / "config.json").write_text(json.dumps(config))
    tiny_client.post("/models", body={"id": "short-chat", "path": str(folder)}, cast_to=openai.types.Model)
    return tiny_client


def test_a_run_without_a_budget_is_not_cut_at_a_hidden_cap(short_client):
    c = short_client
    assistant = c.beta.assistants.create(model="short-chat", instructions="Talk.")
    thread = c.beta.threads.create(messages=[{"role": "user", "content": "Tell me everything."}])
    run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, temperature=0,
                                              poll_interval_ms=100)
    assert run.status in ("completed", "incomplete"), run.last_error
    if run.status == "incomplete":  # only the context limit may stop it
        assert run.incomplete_details.reason == "context_length"
        assert run.usage.prompt_tokens + run.usage.completion_tokens >= CONTEXT - 1
        # the old default stopped every answer at min(512, context / 4) tokens
        assert run.usage.completion_tokens > CONTEXT // 4

    budgeted = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, temperature=0,
                                                   max_completion_tokens=5, poll_interval_ms=100)
    assert budgeted.status == "incomplete" and budgeted.incomplete_details.reason == "max_completion_tokens"
    assert budgeted.usage.completion_tokens == 5


def test_chat_without_max_tokens_runs_to_the_context_limit(short_client):
    reply = short_client.chat.completions.create(model="short-chat", temperature=0,
                                                 messages=[{"role": "user", "content": "Tell me everything."}])
    assert reply.choices[0].finish_reason in ("stop", "length")
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.total_tokens == CONTEXT
