"""Training on Ray (TUNEFORGE_TRAINING_BACKEND=ray) against a real Ray head on loopback.

One head for the module (it takes ~15 s to start); each test runs its own tuneforge on its own data folder.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from helpers import (
    all_events,
    chat_lines,
    metrics,
    register_tiny,
    runner_pids,
    upload,
    wait_for,
    wait_until,
    write_jsonl,
)

pytest.importorskip("ray.job_submission", reason="ray[default] is not installed (pip install 'tuneforge[ray]')",
                    exc_type=ImportError)

from ray_head import RayHead  # noqa: E402

from tuneforge.testing import free_port  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_head():
    head = RayHead(num_cpus=2)  # logical CPUs: a job on 2 Ray Train workers reserves 1 each
    try:
        head.wait_ready()
        print(f"\nRay head ready in {head.started_s:.1f} s")
        yield head
    finally:
        head.stop()


@pytest.fixture
def jobs_client(ray_head):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(ray_head.address)


def ray_settings(make_settings, ray_head, **overrides):
    return make_settings(training_backend="ray", ray_address=ray_head.address, worker_poll_s=0.2, train_threads=1,
                         **overrides)


def create(client, tmp_path, hp, seed=5):
    train = upload(client, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
    return client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, seed=seed,
                                          method={"type": "supervised", "supervised": {"hyperparameters": hp}})


def ray_status(jobs_client, job_id: str) -> str:
    return jobs_client.get_job_status(job_id).value


def submissions(client, job_id: str) -> list[str]:
    """The Ray submission ids of the job's runs, from its events."""
    prefix = "Submitted to the Ray cluster as Ray job "
    return [e.message[len(prefix):].split()[0] for e in all_events(client, job_id) if e.message.startswith(prefix)]


def step_of(job) -> int:
    return job.model_extra["tuneforge"]["step"] or 0


def test_a_job_trains_on_ray_and_its_model_is_served(ray_head, jobs_client, make_settings, live_server,
                                                     tiny_model_dir, tmp_path):
    with live_server(ray_settings(make_settings, ray_head)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        register_tiny(client, tiny_model_dir)
        job = create(client, tmp_path, {"n_epochs": 2, "batch_size": 2})  # 12 steps, checkpoints at 6 and 12
        done = wait_for(client, job.id, timeout=300)
        assert done.status == "succeeded", done.error
        # submission id = the job id; the process exits just after writing the final state
        wait_until(lambda: ray_status(jobs_client, job.id) == "SUCCEEDED", timeout=30, interval=0.2)
        info = jobs_client.get_job_info(job.id)
        assert info.entrypoint.split()[2:] == ["-m", "tuneforge.training.runner", job.id, f"ray:{job.id}"]
        assert info.metadata == {"tuneforge_job": job.id, "tuneforge_owner": f"ray:{job.id}"}

        events = all_events(client, job.id)
        messages = [e.message for e in events]
        assert any(m.startswith(f"Submitted to the Ray cluster as Ray job {job.id}") for m in messages)
        assert [m["step"] for m in metrics(events)] == list(range(1, 13))
        assert "successfully completed" in messages[-1]
        assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)] == [12, 6]
        adapters = server.settings.data_dir / "adapters" / job.id
        assert (adapters / "final" / "adapter_model.safetensors").is_file()
        log = server.settings.data_dir / "logs" / f"{job.id}.log"  # copied once the worker sees the run end
        wait_until(lambda: log.is_file() and "tuneforge.training.runner" in log.read_text(), timeout=15, interval=0.2)

        reply = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=4, temperature=0,
                                               messages=[{"role": "user", "content": "What is your name?"}])
        assert reply.model == done.fine_tuned_model and reply.choices[0].message.content


def test_cancel_stops_the_ray_job(ray_head, jobs_client, make_settings, live_server, tiny_model_dir, tmp_path):
    with live_server(ray_settings(make_settings, ray_head)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        register_tiny(client, tiny_model_dir)
        job = create(client, tmp_path, {"n_epochs": 50, "batch_size": 1})
        wait_for(client, job.id, statuses=("running",), timeout=120, predicate=lambda j: step_of(j) >= 3)
        assert ray_status(jobs_client, job.id) == "RUNNING" and runner_pids(job.id)
        assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
        wait_until(lambda: ray_status(jobs_client, job.id) == "STOPPED", timeout=15, interval=0.2)
        wait_until(lambda: not runner_pids(job.id), timeout=10)
        wait_until(lambda: any("Ray job was stopped" in e.message for e in all_events(client, job.id)), timeout=15)
        job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "cancelled" and job.fine_tuned_model is None and job.finished_at


def _serve(settings, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, TUNEFORGE_DATA_DIR=str(settings.data_dir), TUNEFORGE_PORT=str(port),
               TUNEFORGE_MODELS_CACHE_DIR=str(settings.models_dir), TUNEFORGE_TRAINING_BACKEND="ray",
               TUNEFORGE_RAY_ADDRESS=settings.ray_address, TUNEFORGE_WORKER_POLL_S="0.2", TUNEFORGE_TRAIN_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2] / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"), stdin=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError("tuneforge serve did not start: " + log.read_text()[-2000:])


def test_a_sigkilled_server_restarts_and_reattaches_to_the_running_ray_job(ray_head, jobs_client, make_settings,
                                                                           tiny_model_dir, tmp_path):
    settings = ray_settings(make_settings, ray_head)
    settings.ensure_dirs()
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    server = _serve(settings, port, tmp_path / "serve.log")
    try:
        client = openai.OpenAI(base_url=base, api_key="sk-test", max_retries=0)
        register_tiny(client, tiny_model_dir)
        # 180 steps: long enough to outlast the restart below (a server start takes 10-40 s on a busy CI machine)
        job = create(client, tmp_path, {"n_epochs": 30, "batch_size": 2})
        wait_for(client, job.id, statuses=("running",), timeout=120, predicate=lambda j: step_of(j) >= 3)
        submitted = jobs_client.get_job_info(job.id)
        server.send_signal(signal.SIGKILL)
        server.wait()

        # nobody follows the job now; it trains on in Ray and keeps writing its progress to the database
        from tuneforge.db.models import FineTuningJobRow
        from tuneforge.db.session import Database

        db = Database(settings.resolved_database_url)
        try:
            def step_now():
                with db.session() as session:
                    return session.get(FineTuningJobRow, job.id).step or 0
            killed_at = step_now()
            wait_until(lambda: step_now() >= killed_at + 3, timeout=60, interval=0.2)
        finally:
            db.dispose()
        assert ray_status(jobs_client, job.id) == "RUNNING"

        port = free_port()
        server = _serve(settings, port, tmp_path / "serve.log")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
        done = wait_for(client, job.id, timeout=300)
        assert done.status == "succeeded", done.error
        events = all_events(client, job.id)
    finally:
        server.kill()
        server.wait()
    wait_until(lambda: ray_status(jobs_client, job.id) == "SUCCEEDED", timeout=30, interval=0.2)
    again = jobs_client.get_job_info(job.id)
    assert again.start_time == submitted.start_time  # followed, never resubmitted
    messages = [e.message for e in events]
    assert any("follows the job's Ray run again" in m for m in messages), messages
    assert not any("queued again" in m or "Resuming from step" in m for m in messages), messages
    assert [m["step"] for m in metrics(events)] == list(range(1, 181))
    assert len([m for m in messages if m.startswith("Submitted to the Ray cluster")]) == 1


def test_a_run_ray_loses_is_retried_from_its_checkpoint_and_pause_resume_resubmits(
        ray_head, jobs_client, make_settings, live_server, tiny_model_dir, tmp_path):
    with live_server(ray_settings(make_settings, ray_head)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        register_tiny(client, tiny_model_dir)
        job = create(client, tmp_path, {"n_epochs": 4, "batch_size": 2})  # 24 steps, checkpoints every 6
        wait_for(client, job.id, statuses=("running",), timeout=120, predicate=lambda j: step_of(j) >= 8)
        for pid in runner_pids(job.id):  # the training process dies under Ray (as in an out-of-memory kill)
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: any("queued again and resumes from checkpoint step" in e.message
                               for e in all_events(client, job.id)), timeout=30, interval=0.3)
        assert ray_status(jobs_client, job.id) == "FAILED"
        # resubmitted as a new Ray job (a submission id is never reused)
        wait_for(client, job.id, statuses=("running",), timeout=120, predicate=lambda j: step_of(j) >= 14)
        retried = submissions(client, job.id)[-1]
        assert retried.startswith(f"{job.id}-") and ray_status(jobs_client, retried) == "RUNNING"

        client.fine_tuning.jobs.pause(job.id)
        paused = wait_for(client, job.id, statuses=("paused",), timeout=60)
        assert ray_status(jobs_client, retried) == "STOPPED" and not runner_pids(job.id)
        step = step_of(paused)
        assert client.fine_tuning.jobs.resume(job.id).status == "queued"
        done = wait_for(client, job.id, timeout=300)
        assert done.status == "succeeded", done.error
        events = all_events(client, job.id)
        ids = submissions(client, job.id)
    messages = [e.message for e in events]
    assert [m["step"] for m in metrics(events)] == list(range(1, 25))  # replayed steps are not recorded twice
    assert any("Ray reported its run FAILED" in m and "retry 1 of 3" in m for m in messages), messages
    assert any(m.startswith("Resuming from step 6") or m.startswith("Resuming from step 12") for m in messages)
    assert any(m.startswith(f"Resuming from step {step}") for m in messages), (step, messages)
    assert len(ids) == 3 and len(set(ids)) == 3 and ids[0] == job.id
    assert ray_status(jobs_client, ids[-1]) in ("RUNNING", "SUCCEEDED")
    assert len([m for m in messages if m.startswith("New fine-tuned model")]) == 1


def test_a_job_on_two_workers_trains_through_ray_train_pauses_and_resumes(
        ray_head, jobs_client, make_settings, live_server, tiny_model_dir, tmp_path):
    """``distributed.num_workers`` = 2: a Ray Train TorchTrainer with 2 CPU workers on gloo; rank 0 writes."""
    with live_server(ray_settings(make_settings, ray_head)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        register_tiny(client, tiny_model_dir)
        train = upload(client, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
        started = time.time()
        job = client.fine_tuning.jobs.create(
            model="tiny-chat", training_file=train, seed=5,
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 8, "batch_size": 3}}},
            extra_body={"distributed": {"num_workers": 2, "cpus_per_worker": 1}})  # 32 steps, shards of 2 and 1
        assert job.model_extra["tuneforge"]["distributed"] == {"num_workers": 2, "cpus_per_worker": 1}
        wait_for(client, job.id, statuses=("running",), timeout=180, predicate=lambda j: step_of(j) >= 2)
        client.fine_tuning.jobs.pause(job.id)
        paused = wait_for(client, job.id, statuses=("paused",), timeout=90)
        assert ray_status(jobs_client, job.id) == "STOPPED"
        step = step_of(paused)
        assert 2 <= step < 32
        assert client.fine_tuning.jobs.resume(job.id).status == "queued"
        done = wait_for(client, job.id, timeout=300)
        took = time.time() - started
        assert done.status == "succeeded", done.error
        events = all_events(client, job.id)
        ids = submissions(client, job.id)
        checkpoints = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
        adapters = server.settings.data_dir / "adapters" / job.id
        reply = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=4, temperature=0,
                                               messages=[{"role": "user", "content": "What is your name?"}])
    print(f"\n2-worker job (32 steps, paused and resumed) took {took:.1f} s")
    assert reply.choices[0].message.content
    assert len(ids) == 2 and ids[0] == job.id
    for sid in ids:
        info = jobs_client.get_job_info(sid)
        assert info.entrypoint.split()[2:4] == ["-m", "tuneforge.training.ray_train"]
    messages = [e.message for e in events]
    assert any(m.startswith(f"Submitted to the Ray cluster as Ray job {job.id} (Ray Train, 2 workers x 1 CPUs)")
               for m in messages), messages
    assert any(m.startswith(f"Resuming from step {step}") for m in messages), (step, messages)
    # every step once, from rank 0 only, with a finite loss
    steps = metrics(events)
    assert [m["step"] for m in steps] == list(range(1, 33))
    assert all(math.isfinite(m["train_loss"]) for m in steps)
    assert steps[-1]["train_loss"] < steps[0]["train_loss"]
    started_events = [e for e in events if e.message.startswith("Training on 2 workers")]  # once a job, as "Loaded"
    assert [e.data for e in started_events] == [{"world_size": 2, "backend": "gloo", "threads_per_worker": 1}]
    # the run after the resume: both ranks trained, on disjoint shards, together every remaining example
    stats = next(e.data for e in events if e.message.startswith("Trained on 2 workers"))
    remaining = 12 * 8 - 3 * step
    assert stats["world_size"] == 2 and stats["shard_overlap"] == 0
    assert sum(stats["examples_per_rank"]) == remaining and min(stats["examples_per_rank"]) > 0
    assert stats["examples_per_rank"][0] > stats["examples_per_rank"][1]  # shards of 2 and 1 per batch of 3
    assert len([m for m in messages if m.startswith("New fine-tuned model")]) == 1
    assert checkpoints == [32, 28, 24]
    assert (adapters / "final" / "adapter_model.safetensors").is_file()
    assert (adapters / "ray_train").is_dir()  # Ray Train's run folder is the job's, not ~/ray_results


def test_an_unreachable_ray_cluster_leaves_jobs_queued(make_settings, live_server, tiny_model_dir, tmp_path):
    settings = make_settings(training_backend="ray", ray_address=f"http://127.0.0.1:{free_port()}",
                             worker_poll_s=0.2)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        register_tiny(client, tiny_model_dir)
        job = create(client, tmp_path, {"n_epochs": 1})
        wait_until(lambda: any("Submitting the job to the Ray cluster failed" in e.message
                               for e in all_events(client, job.id)), timeout=60, interval=0.3)
        time.sleep(1)
        job = client.fine_tuning.jobs.retrieve(job.id)
        assert job.status == "queued" and job.error is None
        assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"  # still an ordinary queued job
