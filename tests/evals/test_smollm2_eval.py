"""An eval run on the bundled SmolLM2-135M-Instruct: it samples real answers and also judges them."""

from __future__ import annotations

import time

import openai
import pytest

from tuneforge.testing import live_server

MODEL = "smollm2-135m-instruct"


@pytest.mark.slow
def test_smollm2_answers_and_judges(make_settings):
    settings = make_settings(serve_default_max_tokens=32)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        ev = client.evals.create(
            data_source_config={"type": "custom", "item_schema": {"type": "object"}},
            testing_criteria=[
                {"type": "string_check", "name": "mentions", "operation": "ilike",
                 "input": "{{sample.output_text}}", "reference": "{{item.expected}}"},
                {"type": "label_model", "name": "judge", "model": MODEL, "labels": ["correct", "incorrect"],
                 "passing_labels": ["correct"], "input": [
                     {"role": "user", "content": "Question: {{item.question}}\nAnswer: {{sample.output_text}}\n"
                                                 "Is the answer correct?"}]}])
        items = [{"item": {"question": "What is the capital of France?", "expected": "Paris"}},
                 {"item": {"question": "What is the capital of Japan?", "expected": "Tokyo"}}]
        run = client.evals.runs.create(ev.id, data_source={
            "type": "completions", "model": MODEL, "source": {"type": "file_content", "content": items},
            "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.question}}"}]},
            "sampling_params": {"temperature": 0, "max_completion_tokens": 24}})
        deadline = time.time() + 600
        while (run := client.evals.runs.retrieve(run.id, eval_id=ev.id)).status not in ("completed", "failed"):
            assert time.time() < deadline
            time.sleep(0.5)
        assert run.status == "completed"
        out = list(client.evals.runs.output_items.list(run.id, eval_id=ev.id, order="asc"))
        answers = [o.sample.output[0].content for o in out]
        assert "paris" in answers[0].lower(), answers
        assert {r.name: r.passed for r in out[0].results}["mentions"] is True
        usage = {u.run_model_name: u for u in run.per_model_usage}
        # two samples plus two judge calls, all by the same model
        assert usage[MODEL].invocation_count == 4
        judged = [r for o in out for r in o.results if r.name == "judge"]
        assert all("judge_output" in (r.sample or {}) for r in judged)
