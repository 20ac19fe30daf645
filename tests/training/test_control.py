"""Cancel, pause/resume, and a worker killed with SIGKILL mid-training (nothing lost, nothing twice)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import openai
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

LONG = {"n_epochs": 20, "batch_size": 2, "learning_rate_multiplier": 10}  # 120 steps


def create(client, tmp_path, hp=LONG, seed=5):
    train = upload(client, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
    return client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, seed=seed,
                                          method={"type": "supervised", "supervised": {"hyperparameters": hp}})


def assert_steps_once(client, job_id, total):
    events = all_events(client, job_id)
    steps = [m["step"] for m in metrics(events)]
    assert steps == list(range(1, total + 1)), steps
    keys = collections.Counter(e.message for e in events if "Checkpoint created" in e.message)
    assert all(n == 1 for n in keys.values())
    return events


def test_cancel_stops_the_training_process_within_5_s(tiny_server, tmp_path):
    client, _ = tiny_server
    job = create(client, tmp_path, {"n_epochs": 50, "batch_size": 1})
    wait_for(client, job.id, statuses=("running",), predicate=lambda j: (j.model_extra["tuneforge"]["step"] or 0) >= 3)
    assert runner_pids(job.id)
    started = time.time()
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    wait_until(lambda: not runner_pids(job.id), timeout=5)
    assert time.time() - started < 5
    # the worker has handled the cancel once it logged it; nothing may flip the status back after that
    wait_until(lambda: any("cancelled" in e.message for e in all_events(client, job.id)), timeout=10)
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "cancelled" and job.fine_tuned_model is None and job.finished_at
    try:
        client.fine_tuning.jobs.resume(job.id)
        raise AssertionError("resume of a cancelled job must fail")
    except openai.BadRequestError:
        pass


def test_pause_then_resume_continues_from_the_saved_state(tiny_server, tmp_path):
    client, server = tiny_server
    job = create(client, tmp_path, {**LONG, "n_epochs": 10})  # 60 steps
    wait_for(client, job.id, statuses=("running",), predicate=lambda j: (j.model_extra["tuneforge"]["step"] or 0) >= 3)
    client.fine_tuning.jobs.pause(job.id)
    paused = wait_for(client, job.id, statuses=("paused",), timeout=60)
    step = paused.model_extra["tuneforge"]["step"]
    assert 3 <= step < 60 and not runner_pids(job.id)
    assert (server.settings.data_dir / "adapters" / job.id / "paused" / "adapter_model.safetensors").is_file() \
        or step % 6 == 0  # a pause right at an epoch end resumes from that checkpoint
    assert client.fine_tuning.jobs.retrieve(job.id).model_extra["tuneforge"]["step"] == step  # no process left
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    done = wait_for(client, job.id, timeout=400)
    assert done.status == "succeeded", done.error
    events = assert_steps_once(client, job.id, 60)
    assert any(e.message.startswith(f"Resuming from step {step}") for e in events)


def _start_worker(settings) -> subprocess.Popen:
    env = dict(os.environ, TUNEFORGE_SETTINGS_JSON=settings.model_dump_json())
    return subprocess.Popen([sys.executable, "-m", "tuneforge.training.worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigkilled_worker_the_job_resumes_in_a_new_worker(make_settings, live_server, tiny_model_dir, tmp_path):
    settings = make_settings(worker_in_process=False, worker_poll_s=0.2, train_threads=1)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        register_tiny(client, tiny_model_dir)
        worker = _start_worker(settings)
        try:
            job = create(client, tmp_path)
            # past the first epoch checkpoint (step 6), mid-way through the second epoch
            wait_for(client, job.id, statuses=("running",), timeout=120,
                     predicate=lambda j: (j.model_extra["tuneforge"]["step"] or 0) >= 8)
            children = runner_pids(job.id)
            assert children
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            wait_until(lambda: not runner_pids(job.id), timeout=5)  # the child noticed and exited
            stuck = client.fine_tuning.jobs.retrieve(job.id)
            assert stuck.status == "running"  # nobody has noticed yet
            killed_at = stuck.model_extra["tuneforge"]["step"]
            assert killed_at < 120

            worker = _start_worker(settings)
            done = wait_for(client, job.id, timeout=400)
            assert done.status == "succeeded", done.error
        finally:
            worker.kill()
            worker.wait()
        events = assert_steps_once(client, job.id, 120)
        messages = [e.message for e in events]
        assert any("queued again and resumes from checkpoint step" in m for m in messages)
        resumed = [m for m in messages if m.startswith("Resuming from step")]
        assert resumed and int(resumed[0].split()[3]) <= killed_at
        assert len([m for m in messages if m.startswith("New fine-tuned model")]) == 1
        assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)] == [120, 114, 108]
