"""A run survives a restart: the new server finishes the pending items and redoes none of the finished ones."""

from __future__ import annotations

import json
import time

import openai
from evals_support import TINY, register_tiny

from tuneforge.testing import live_server


def _done(settings, run_id) -> dict[str, str]:
    from tuneforge.db.models import EvalItemRow
    from tuneforge.db.session import Database

    db = Database(settings.resolved_database_url)
    try:
        with db.session() as session:
            rows = session.query(EvalItemRow).filter(EvalItemRow.run_id == run_id, EvalItemRow.status != "pending")
            return {r.id: r.sample for r in rows}
    finally:
        db.dispose()


def test_restart_resumes_a_run_without_redoing_items(make_settings, tiny_model_dir):
    settings = make_settings(evals_concurrency=1)
    register_tiny(settings, tiny_model_dir)
    items = [{"item": {"q": f"question {i}"}} for i in range(24)]
    source = {"type": "completions", "model": TINY, "source": {"type": "file_content", "content": items},
              "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.q}}"}]},
              "sampling_params": {"max_completion_tokens": 8, "temperature": 1.0}}
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        ev = client.evals.create(data_source_config={"type": "custom", "item_schema": {"type": "object"}},
                                 testing_criteria=[{"type": "string_check", "name": "x", "operation": "ne",
                                                    "input": "{{sample.output_text}}", "reference": ""}])
        run = client.evals.runs.create(ev.id, data_source=source)
        deadline = time.time() + 60
        while client.evals.runs.retrieve(run.id, eval_id=ev.id).result_counts.total and time.time() < deadline:
            counts = client.evals.runs.retrieve(run.id, eval_id=ev.id).result_counts
            if counts.passed + counts.failed + counts.errored >= 3:
                break
            time.sleep(0.02)
    before = _done(settings, run.id)
    assert 3 <= len(before) < 24, "the run should have been stopped part-way"
    with live_server(settings) as server:  # a new process would do the same: the state is in the database
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        deadline = time.time() + 120
        while (final := client.evals.runs.retrieve(run.id, eval_id=ev.id)).status != "completed":
            assert time.time() < deadline, final.status
            time.sleep(0.1)
        engine = server.app.state.tuneforge.engine
        assert engine.stats.requests_submitted == 24 - len(before)  # only the pending items were sampled
    after = _done(settings, run.id)
    assert len(after) == 24 and final.result_counts.total == 24
    assert {k: after[k] for k in before} == before  # finished items untouched
    assert all(json.loads(s)["model"] == TINY for s in after.values())
