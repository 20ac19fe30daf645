"""/v1/evals through the official SDK against a real server with the tiny model: CRUD, runs on every data
source kind, output items, cancel/delete, bad input, other projects, and a restart that resumes a run."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest
from evals_support import TINY

from tuneforge.testing import live_server

ITEM_SCHEMA = {"type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
               "required": ["question", "answer"]}
EXACT = {"type": "string_check", "name": "exact", "operation": "eq", "input": "{{sample.output_text}}",
         "reference": "{{item.answer}}"}
FUZZY = {"type": "text_similarity", "name": "fuzzy", "evaluation_metric": "fuzzy_match",
         "input": "{{sample.output_text}}", "reference": "{{item.answer}}", "pass_threshold": 0.5}
ITEMS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(6)]


@pytest.fixture
def server(tiny_settings):
    with live_server(tiny_settings) as srv:
        yield srv


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def make_eval(client, criteria=(EXACT, FUZZY), **extra):
    return client.evals.create(name="arith", data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA,
                                                                  "include_sample_schema": True},
                               testing_criteria=list(criteria), **extra)


def wait(client, eval_id, run_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = client.evals.runs.retrieve(run_id, eval_id=eval_id)
        if run.status in ("completed", "failed", "canceled"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {run.status}")


def test_eval_crud(client):
    ev = make_eval(client, metadata={"team": "qa"})
    assert ev.id.startswith("eval_") and ev.object == "eval" and ev.name == "arith"
    assert ev.data_source_config.type == "custom"
    assert ev.data_source_config.schema_["properties"]["item"] == ITEM_SCHEMA
    assert [c.name for c in ev.testing_criteria] == ["exact", "fuzzy"]
    assert client.evals.retrieve(ev.id).metadata == {"team": "qa"}
    assert client.evals.update(ev.id, name="renamed").name == "renamed"
    second = make_eval(client)
    assert [e.id for e in client.evals.list(order="asc")] == [ev.id, second.id]
    assert client.evals.delete(ev.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.evals.retrieve(ev.id)


def test_jsonl_run_with_given_samples(client):
    ev = make_eval(client)
    content = [{"item": it, "sample": {"output_text": it["answer"] if i % 2 == 0 else "wrong",
                                       "model": "someone"}} for i, it in enumerate(ITEMS)]
    run = client.evals.runs.create(ev.id, name="given", data_source={"type": "jsonl", "source": {
        "type": "file_content", "content": content}})
    assert run.status == "queued" and run.object == "eval.run"
    run = wait(client, ev.id, run.id)
    assert run.status == "completed"
    assert run.result_counts.model_dump() == {"total": 6, "passed": 3, "failed": 3, "errored": 0}
    per = {r.testing_criteria: (r.passed, r.failed) for r in run.per_testing_criteria_results}
    assert per == {"exact": (3, 3), "fuzzy": (3, 3)}
    items = list(client.evals.runs.output_items.list(run.id, eval_id=ev.id, order="asc"))
    assert [i.datasource_item_id for i in items] == list(range(6))
    assert [i.status for i in items] == ["pass", "fail"] * 3
    assert items[0].datasource_item == ITEMS[0]
    assert {r.name: r.passed for r in items[1].results} == {"exact": False, "fuzzy": False}
    failed = list(client.evals.runs.output_items.list(run.id, eval_id=ev.id, status="fail"))
    assert len(failed) == 3
    one = client.evals.runs.output_items.retrieve(items[2].id, eval_id=ev.id, run_id=run.id)
    assert one.id == items[2].id and one.status == "pass"


def test_jsonl_run_from_a_file(client):
    ev = make_eval(client, criteria=[EXACT])
    data = "".join(json.dumps({"item": it, "sample": {"choices": [{"message": {"content": it["answer"]}}]}}) + "\n"
                   for it in ITEMS)
    f = client.files.create(file=("items.jsonl", io.BytesIO(data.encode())), purpose="evals")
    run = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_id", "id": f.id}})
    run = wait(client, ev.id, run.id)
    assert run.result_counts.passed == 6


def test_completions_run_samples_the_model(client):
    ev = make_eval(client)
    run = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": TINY,
        "source": {"type": "file_content", "content": [{"item": it} for it in ITEMS]},
        "input_messages": {"type": "template", "template": [
            {"role": "system", "content": "Answer with a number."},
            {"role": "user", "content": "{{item.question}}"}]},
        "sampling_params": {"max_completion_tokens": 6, "temperature": 0, "seed": 3}})
    run = wait(client, ev.id, run.id)
    assert run.status == "completed" and run.model == TINY
    assert run.result_counts.total == 6 and run.result_counts.errored == 0
    usage = {u.run_model_name: u for u in run.per_model_usage}
    assert usage[TINY].invocation_count == 6 and usage[TINY].completion_tokens <= 36
    item = next(iter(client.evals.runs.output_items.list(run.id, eval_id=ev.id, order="asc")))
    assert item.sample.input[1].content == ITEMS[0]["question"]  # the template was rendered per item
    assert item.sample.model == TINY and item.sample.usage.completion_tokens <= 6
    # temperature 0: a second run gives the same outputs
    again = wait(client, ev.id, client.evals.runs.create(ev.id, data_source=run.data_source.model_dump()).id)
    first = [i.sample.output[0].content for i in client.evals.runs.output_items.list(run.id, eval_id=ev.id)]
    second = [i.sample.output[0].content for i in client.evals.runs.output_items.list(again.id, eval_id=ev.id)]
    assert first == second


def test_item_reference_messages(client):
    ev = client.evals.create(data_source_config={"type": "custom", "item_schema": {"type": "object"}},
                             testing_criteria=[{**EXACT, "reference": "{{item.expected}}"}])
    content = [{"item": {"messages": [{"role": "user", "content": "hi"}], "expected": "x"}},
               {"item": {"messages": "a plain prompt", "expected": "y"}},
               {"item": {"expected": "z"}}]  # no messages: this item errors, the others still run
    run = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": TINY, "source": {"type": "file_content", "content": content},
        "input_messages": {"type": "item_reference", "item_reference": "item.messages"},
        "sampling_params": {"max_completion_tokens": 3}})
    run = wait(client, ev.id, run.id)
    assert run.status == "completed"
    assert run.result_counts.errored == 1 and run.result_counts.total == 3
    items = list(client.evals.runs.output_items.list(run.id, eval_id=ev.id, order="asc"))
    assert items[1].sample.input[0].content == "a plain prompt"
    assert items[2].status == "error" and "messages" in items[2].sample.error.message


def test_run_of_a_model_that_fails_every_item_fails(client, server):
    ev = make_eval(client, criteria=[EXACT])
    # the model exists (create accepts it) but every sample is refused: the budget exceeds its context
    run = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": TINY, "source": {"type": "file_content", "content": [{"item": ITEMS[0]}]},
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.question}}"}]},
        "sampling_params": {"max_completion_tokens": 10_000_000}})
    run = wait(client, ev.id, run.id)
    assert run.status == "failed"
    assert run.error.code and run.error.message


@pytest.mark.parametrize("data_source, param", [
    ({"type": "responses", "source": {"type": "file_content", "content": [{"item": ITEMS[0]}]}}, "data_source.type"),
    ({"type": "nope"}, "data_source.type"),
    ({"type": "jsonl", "source": {"type": "file_content", "content": []}}, "data_source.source"),
    ({"type": "jsonl", "source": {"type": "file_content", "content": [{"item": {"question": 1}}]}},
     "data_source.source"),
    ({"type": "completions", "source": {"type": "file_content", "content": [{"item": ITEMS[0]}]},
      "input_messages": {"type": "template", "template": [{"role": "user", "content": "x"}]}},
     "data_source.model"),
    ({"type": "completions", "model": TINY, "source": {"type": "file_content", "content": [{"item": ITEMS[0]}]}},
     "data_source.input_messages"),
    ({"type": "completions", "model": TINY, "source": {"type": "file_content", "content": [{"item": ITEMS[0]}]},
      "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{ item."}]}},
     "data_source.input_messages.template[0].content"),
    ({"type": "completions", "model": TINY, "source": {"type": "file_content", "content": [{"item": ITEMS[0]}]},
      "input_messages": {"type": "template", "template": [{"role": "user", "content": "x"}]},
      "sampling_params": {"tools": [{"type": "function", "function": {"name": "f"}}]}},
     "data_source.sampling_params.tools"),
    ({"type": "jsonl", "source": {"type": "file_id", "id": "file-nope"}}, None),
])
def test_bad_data_sources(client, data_source, param):
    ev = make_eval(client)
    with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as info:
        client.evals.runs.create(ev.id, data_source=data_source)
    if param is not None:
        assert info.value.status_code == 400 and info.value.body["param"] == param, info.value.body
    else:
        assert info.value.status_code == 404


def test_unknown_model_is_404_at_create(client):
    ev = make_eval(client)
    with pytest.raises(openai.NotFoundError) as info:
        client.evals.runs.create(ev.id, data_source={
            "type": "completions", "model": "no-such-model",
            "source": {"type": "file_content", "content": [{"item": ITEMS[0]}]},
            "input_messages": {"type": "template", "template": [{"role": "user", "content": "x"}]}})
    assert info.value.body["code"] == "model_not_found"


@pytest.mark.parametrize("body, param", [
    ({"data_source_config": {"type": "logs"}, "testing_criteria": [EXACT]}, "data_source_config.type"),
    ({"data_source_config": {"type": "custom", "item_schema": {"type": 5}}, "testing_criteria": [EXACT]},
     "data_source_config.item_schema"),
    ({"data_source_config": {"type": "custom", "item_schema": {}}, "testing_criteria": []}, "testing_criteria"),
    ({"data_source_config": {"type": "custom", "item_schema": {}}, "testing_criteria": [{**EXACT, "operation": "x"}]},
     "testing_criteria[0].operation"),
    ({"data_source_config": {"type": "custom", "item_schema": {}}, "testing_criteria": [EXACT, EXACT]},
     "testing_criteria[1].name"),
])
def test_bad_evals_are_400(client, body, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.evals.create(**body)
    assert info.value.body["param"] == param


def test_cancel_delete_and_other_projects(server, tiny_settings):
    from tuneforge.db.session import Database
    from tuneforge.projects import create_key

    db = Database(tiny_settings.resolved_database_url)
    with db.session() as session:
        mine, _ = create_key(session, "default")
        theirs, _ = create_key(session, "other")
    db.dispose()
    client = openai.OpenAI(base_url=server.base_url, api_key=mine, max_retries=0)
    ev = make_eval(client)
    content = [{"item": it} for it in ITEMS * 8]
    run = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": TINY, "source": {"type": "file_content", "content": content},
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.question}}"}]},
        "sampling_params": {"max_completion_tokens": 16}})
    canceled = client.evals.runs.cancel(run.id, eval_id=ev.id)
    assert canceled.status == "canceled"
    time.sleep(1.0)
    final = client.evals.runs.retrieve(run.id, eval_id=ev.id)
    assert final.status == "canceled" and final.result_counts.total == 48
    done = final.result_counts.passed + final.result_counts.failed + final.result_counts.errored
    assert done < 48  # stopped early: the rest was never sampled
    # another project's key sees none of it
    other = openai.OpenAI(base_url=server.base_url, api_key=theirs, max_retries=0)
    for call in (lambda: other.evals.retrieve(ev.id), lambda: other.evals.runs.retrieve(run.id, eval_id=ev.id),
                 lambda: other.evals.runs.output_items.list(run.id, eval_id=ev.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert client.evals.runs.delete(run.id, eval_id=ev.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.evals.runs.retrieve(run.id, eval_id=ev.id)


def test_judge_calls_count_in_per_model_usage(client):
    judge = {"type": "label_model", "name": "judge", "model": TINY, "labels": ["good", "bad"],
             "passing_labels": ["good"], "input": [{"role": "user", "content": "{{item.question}} -> "
                                                                               "{{sample.output_text}}"}]}
    ev = make_eval(client, criteria=[EXACT, judge])
    run = wait(client, ev.id, client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": TINY, "source": {"type": "file_content", "content": [
            {"item": it} for it in ITEMS[:3]]},
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.question}}"}]},
        "sampling_params": {"max_completion_tokens": 4}}).id)
    assert run.status == "completed"
    usage = {u.run_model_name: u for u in run.per_model_usage}
    assert usage[TINY].invocation_count == 6  # three samples and three judge calls by the same model
    item = next(iter(client.evals.runs.output_items.list(run.id, eval_id=ev.id)))
    result = {r.name: r for r in item.results}["judge"]
    assert "judge_output" in result.sample  # what the judge said is kept with the result
