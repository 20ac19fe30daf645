"""Scoring every checkpoint with graders (the ``validation_eval`` extension), through the official SDK
against a real server: the tiny model trains, the offline runner samples each checkpoint on the
validation prompts and the checkpoints list carries the mean score per grader."""

from __future__ import annotations

import json
import time

import openai
import pytest
from helpers import PERSONA, all_events, chat_lines, upload, wait_for, write_jsonl
from typer.testing import CliRunner

from tuneforge.cli.main import app

GRADERS = [
    # the reference reaches templates as {{item.reference}}: the final assistant turn of the line
    {"type": "string_check", "name": "has_ref", "input": "{{item.reference}}",
     "reference": "", "operation": "ne"},
    {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.reference}}",
     "operation": "eq"},
    {"type": "text_similarity", "name": "similar", "input": "{{sample.output_text}}",
     "reference": "{{item.reference}}", "evaluation_metric": "fuzzy_match"},
]
VALIDATION_EVAL = {"graders": GRADERS, "max_items": 4, "sampling_params": {"max_completion_tokens": 8}}


def scored_checkpoints(client: openai.OpenAI, job_id: str, timeout: float = 180) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job_id))
        states = [c.tuneforge["scoring"]["status"] for c in checkpoints]
        if checkpoints and all(s in ("completed", "failed") for s in states):
            return checkpoints
        time.sleep(0.5)
    raise AssertionError(f"checkpoints of {job_id} not scored after {timeout} s: {states}")


def test_every_checkpoint_is_scored_with_the_jobs_graders(tiny_server, tmp_path, live_server, train_settings):
    client, server = tiny_server
    train = upload(client, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
    valid_rows = chat_lines(PERSONA[:10])  # the validator wants 10 lines; max_items scores the first 4
    valid = upload(client, write_jsonl(tmp_path / "valid.jsonl", valid_rows))
    job = client.fine_tuning.jobs.create(
        model="tiny-chat", training_file=train, validation_file=valid, seed=3,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}}},
        extra_body={"validation_eval": VALIDATION_EVAL})
    spec = job.tuneforge["validation_eval"]
    assert spec["max_items"] == 4 and spec["sampling_params"] == {"temperature": 0, "max_completion_tokens": 8}
    eval_id = spec["eval_id"]
    assert client.evals.retrieve(eval_id).metadata == {"fine_tuning_job_id": job.id}

    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    checkpoints = scored_checkpoints(client, job.id)
    assert [c.step_number for c in checkpoints] == [6, 3]  # 12 examples / 4 = 3 steps per epoch
    runs = {r.metadata["step_number"]: r for r in client.evals.runs.list(eval_id)}
    assert set(runs) == {"3", "6"}
    for ckpt in checkpoints:
        scoring = ckpt.tuneforge["scoring"]
        assert scoring["status"] == "completed" and scoring["eval_id"] == eval_id
        run = runs[str(ckpt.step_number)]
        assert scoring["eval_run_id"] == run.id and run.status == "completed"
        assert run.model == ckpt.fine_tuned_model_checkpoint and run.result_counts.total == 4
        scores = ckpt.metrics.graders  # the SDK keeps the extra metrics key
        assert set(scores) == {"has_ref", "exact", "similar"} and scores["has_ref"] == 1.0
        assert ckpt.metrics.train_loss is not None  # the trainer's metrics are still there
        items = sorted(client.evals.runs.output_items.list(run.id, eval_id=eval_id), key=lambda i: i.datasource_item_id)
        assert [i.datasource_item["reference"] for i in items] == [a for _, a in PERSONA[:4]]
        for name in ("exact", "similar"):
            per_item = [next(r.score for r in i.results if r.name == name) for i in items]
            assert scores[name] == pytest.approx(sum(per_item) / len(per_item), abs=1e-6)
        # greedy: asking the checkpoint the same prompt gives the answer that was graded
        first = items[0]
        assert first.datasource_item["messages"] == valid_rows[0]["messages"][:-1]
        again = client.chat.completions.create(model=ckpt.fine_tuned_model_checkpoint, temperature=0, max_tokens=8,
                                               messages=first.datasource_item["messages"])
        assert first.sample.output[0].content == again.choices[0].message.content
    messages = [e.message for e in all_events(client, job.id)]
    assert sum(m.startswith("Scoring checkpoint step") for m in messages) == 2
    assert any(m.startswith("Checkpoint step 6 scored on 4 validation items") for m in messages)

    # the CLI shows the scores and names the best checkpoint by the chosen grader
    cli = CliRunner()
    shown = cli.invoke(app, ["jobs", "checkpoints", job.id, "--best-by", "similar", "--base-url", server.base_url])
    assert shown.exit_code == 0, shown.output
    best = max(checkpoints, key=lambda c: (c.metrics.graders["similar"], c.step_number))
    assert f"Best by similar: {best.fine_tuned_model_checkpoint}" in shown.stdout
    assert "has_ref" in shown.stdout and "1.0000" in shown.stdout
    wrong = cli.invoke(app, ["jobs", "checkpoints", job.id, "--best-by", "nope", "--base-url", server.base_url])
    assert wrong.exit_code != 0 and "no grader 'nope'" in wrong.output

    # a restart neither loses nor redoes finished scoring
    server.stop()
    with live_server(train_settings) as again_server:
        client2 = openai.OpenAI(base_url=again_server.base_url, api_key="sk-test", max_retries=0)
        time.sleep(3)  # longer than one poll of the offline runner
        after = list(client2.fine_tuning.jobs.checkpoints.list(job.id))
        assert [c.metrics.graders for c in after] == [c.metrics.graders for c in checkpoints]
        assert len(list(client2.evals.runs.list(eval_id))) == 2


def test_bad_validation_eval_is_a_400_naming_the_parameter(tiny_server, tmp_path):
    client, server = tiny_server
    train = upload(client, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
    bad_op = {**GRADERS[1], "operation": "contains"}
    cases = [
        ({"validation_file": train, "extra_body": {"validation_eval": {"graders": [bad_op]}}},
         "validation_eval.graders[0].operation"),
        ({"validation_file": train, "extra_body": {"validation_eval": {"graders": [GRADERS[1], GRADERS[1]]}}},
         "validation_eval.graders[1].name"),
        ({"extra_body": {"validation_eval": {"graders": GRADERS}}}, "validation_eval"),
        ({"validation_file": train, "extra_body": {"validation_eval": {"graders": GRADERS, "max_items": 0}}},
         "validation_eval.max_items"),
        ({"validation_file": train,
          "extra_body": {"validation_eval": {"graders": GRADERS, "sampling_params": {"stream": True}}}},
         "validation_eval.sampling_params.stream"),
    ]
    for kwargs, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, **kwargs)
        assert err.value.status_code == 400 and err.value.body["param"] == param, err.value.body
    # the CLI sends the same extension from a graders file and shows the server's 400
    graders_file = tmp_path / "graders.json"
    graders_file.write_text(json.dumps([bad_op]))
    cli = CliRunner().invoke(app, ["jobs", "create", "-m", "tiny-chat", "-t", train, "--validation-file", train,
                                   "--graders", str(graders_file), "--base-url", server.base_url])
    assert cli.exit_code == 1 and "validation_eval.graders[0].operation" in cli.output, cli.output
    assert not list(client.fine_tuning.jobs.list()) and not list(client.evals.list())  # nothing half-created
