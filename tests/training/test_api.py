"""Fine-tuning API surface through the SDK (in process and over uvicorn), with no worker running:
request validation, errors, pagination, metadata filter, cancel/pause/resume of waiting jobs, the
original simple API, and the queue's recovery of a job whose worker vanished."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from helpers import chat_lines, upload, write_jsonl

from tuneforge.db.models import FineTuningJobRow
from tuneforge.db.session import Database
from tuneforge.training import store


@pytest.fixture
def settings(make_settings):
    return make_settings(worker_in_process=False)  # jobs stay where the API put them


@pytest.fixture
def ready(sdk, tmp_path, tiny_model_dir):
    client = sdk()
    client.post("/models", body={"id": "tiny-chat", "path": str(tiny_model_dir)}, cast_to=openai.types.Model)
    return client, upload(client, write_jsonl(tmp_path / "t.jsonl", chat_lines()))


def test_create_errors_use_the_openai_envelope(ready, tmp_path):
    client, fid = ready
    with pytest.raises(openai.NotFoundError) as err:
        client.fine_tuning.jobs.create(model="no-such-model", training_file=fid)
    assert err.value.code == "model_not_found" and err.value.param == "model"
    with pytest.raises(openai.NotFoundError) as err:
        client.fine_tuning.jobs.create(model="tiny-chat", training_file="file-nope")
    assert err.value.param == "training_file"
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.create(model="ft:tiny-chat:default::ftjob-x", training_file=fid)
    with (tmp_path / "a.txt").open("w") as fh:
        fh.write("x")
    other = client.files.create(file=("a.txt", b"x"), purpose="assistants").id
    bad = [
        dict(training_file=other),
        dict(training_file=fid, suffix="x" * 65),
        dict(training_file=fid, suffix="has:colon"),
        dict(training_file=fid, hyperparameters={"n_epochs": 0}),
        dict(training_file=fid, hyperparameters={"batch_size": 257}),
        dict(training_file=fid, method={"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}),
        dict(training_file=fid, method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}),
        dict(training_file=fid, method={"type": "reinforcement"}),
        dict(training_file=fid, hyperparameters={"n_epochs": 2},
             method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}),
        dict(training_file=fid, metadata={f"k{i}": "v" for i in range(17)}),
    ]
    for kwargs in bad:
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model="tiny-chat", **kwargs)
        assert err.value.body["type"] == "invalid_request_error", kwargs
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/fine_tuning/jobs", body={"model": "tiny-chat", "training_file": fid, "nope": 1},
                    cast_to=httpx.Response)
    assert "nope" in err.value.message
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-missing")
    assert list(client.fine_tuning.jobs.list()) == []  # nothing half-created


def test_job_object_list_pagination_and_metadata(ready):
    client, fid = ready
    ids = [client.fine_tuning.jobs.create(model="tiny-chat", training_file=fid, metadata={"n": str(i % 2)},
                                          hyperparameters={"n_epochs": 2}).id for i in range(5)]
    job = client.fine_tuning.jobs.retrieve(ids[0])
    raw = client.get(f"/fine_tuning/jobs/{ids[0]}", cast_to=httpx.Response).json()
    for key in ("id", "object", "created_at", "finished_at", "model", "fine_tuned_model", "organization_id", "status",
                "hyperparameters", "method", "training_file", "validation_file", "result_files", "trained_tokens",
                "error", "seed", "estimated_finish", "integrations", "metadata", "user_provided_suffix"):
        assert key in raw, key
    assert raw["error"] is None and raw["result_files"] == [] and isinstance(raw["seed"], int)
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == "auto"
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == ids[::-1][:2] and page.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == ids[::-1]  # auto-pagination ends
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"n": "1"})] == [ids[3], ids[1]]
    events = client.fine_tuning.jobs.list_events(ids[0])
    assert events.data[0].object == "fine_tuning.job.event" and "Created fine-tuning job" in events.data[-1].message
    assert client.fine_tuning.jobs.checkpoints.list(ids[0]).data == []


def test_cancel_pause_resume_of_waiting_jobs(ready):
    client, fid = ready
    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=fid)
    with pytest.raises(openai.BadRequestError):  # not validated yet: nothing to pause
        client.fine_tuning.jobs.pause(job.id)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.cancel("ftjob-missing")


def test_other_projects_cannot_see_jobs(sdk, settings, tmp_path, tiny_model_dir):
    from tuneforge.projects import create_key

    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as session:
        key_a, _ = create_key(session, "alpha")
        key_b, _ = create_key(session, "beta")
    db.dispose()
    a, b = sdk(key_a), sdk(key_b)
    a.post("/models", body={"id": "tiny-chat", "path": str(tiny_model_dir)}, cast_to=openai.types.Model)
    job = a.fine_tuning.jobs.create(model="tiny-chat", training_file=upload(a, write_jsonl(tmp_path / "t.jsonl",
                                                                                          chat_lines())))
    assert job.organization_id != "" and a.fine_tuning.jobs.retrieve(job.id).id == job.id
    for call in (b.fine_tuning.jobs.retrieve, b.fine_tuning.jobs.cancel, b.fine_tuning.jobs.list_events):
        with pytest.raises(openai.NotFoundError):
            call(job.id)
    assert list(b.fine_tuning.jobs.list()) == []


def test_compat_routes(settings, live_server, tiny_model_dir, tmp_path):
    settings.default_model = "tiny-chat"
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
        client.post("/models", body={"id": "tiny-chat", "path": str(tiny_model_dir)}, cast_to=openai.types.Model)
        fid = upload(client, write_jsonl(tmp_path / "t.jsonl", chat_lines()))
        created = httpx.post(server.root_url + "/fine_tuning", json={"training_file": fid, "suffix": "old"}).json()
        assert created["info"] == "ok"
        job = created["response"]
        assert job["object"] == "fine_tuning.job" and job["model"] == "tiny-chat" and job["status"] == "validating_files"
        got = httpx.post(server.root_url + "/retrieve", json={"fine_tuning_job_id": job["id"]}).json()
        assert got["info"] == "ok" and got["response"]["id"] == job["id"]
        assert got["response"]["user_provided_suffix"] == "old"
        missing = httpx.post(server.root_url + "/retrieve", json={"fine_tuning_job_id": "ftjob-x"})
        assert missing.status_code == 404 and "error" in missing.json()
        bad = httpx.post(server.root_url + "/fine_tuning", json={"training_file": "file-x"})
        assert bad.status_code == 404 and bad.json()["error"]["param"] == "training_file"


def test_lost_worker_lease_requeues_the_job(sdk, settings, ready):
    client, fid = ready
    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=fid)
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as session:  # as if a worker on another machine claimed it, then went silent
            row = session.get(FineTuningJobRow, job.id)
            row.status, row.worker_id, row.lease_expires_at = "running", "elsewhere:1:x", time.time() + 30
        with db.session() as session:
            assert store.recover_lost(session) == []  # its lease is still valid
            session.get(FineTuningJobRow, job.id).lease_expires_at = time.time() - 1
        with db.session() as session:
            assert store.recover_lost(session) == [job.id]
    finally:
        db.dispose()
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "queued"
    assert "queued again" in client.fine_tuning.jobs.list_events(job.id).data[0].message


def test_distributed_extension_is_checked_and_echoed(ready):
    """``distributed`` (tuneforge extension): several workers need the Ray backend; this server is local."""
    client, fid = ready
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(model="tiny-chat", training_file=fid, extra_body={"distributed": {"num_workers": 2}})
    assert err.value.param == "distributed.num_workers" and "TUNEFORGE_TRAINING_BACKEND=ray" in err.value.message
    for bad, param in (({"num_workers": 0}, "distributed.num_workers"),
                       ({"num_workers": 1, "cpus_per_worker": 0}, "distributed.cpus_per_worker"),
                       ({"workers": 2}, "distributed.workers")):
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(model="tiny-chat", training_file=fid, extra_body={"distributed": bad})
        assert err.value.param == param, (bad, err.value.param)
    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=fid, extra_body={"distributed": {}})
    assert job.model_extra["tuneforge"]["distributed"] == {"num_workers": 1, "cpus_per_worker": 1}
    assert "distributed" not in client.fine_tuning.jobs.create(model="tiny-chat", training_file=fid).model_extra[
        "tuneforge"]
