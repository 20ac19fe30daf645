"""Several `tuneforge serve` processes on one PostgreSQL database and one data folder act as one service.

Each replica is a real ``tuneforge serve`` subprocess on a loopback port, sharing ``TUNEFORGE_DATABASE_URL``
and ``TUNEFORGE_DATA_DIR`` with a short lease (``TUNEFORGE_LEASE_S``). A replica is killed with SIGKILL —
no shutdown code runs — and the survivor must take its work over within the lease time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tuneforge.testing import free_port, wait_until

pytestmark = pytest.mark.slow  # real server processes, training and generation: minutes on a busy CI machine
LEASE_S = 3.0
PERSONA = [("What is your name?", "My name is Forge."), ("Who made you?", "I was trained with tuneforge."),
           ("What colour is the sky?", "The sky is blue."), ("Say hello.", "Hello there!"),
           ("What is two plus two?", "Two plus two is four."), ("Goodbye!", "Goodbye, see you soon."),
           ("Where do you live?", "I live on your machine."), ("What do you like?", "I like tidy data."),
           ("Are you a robot?", "I am a small language model."), ("How many legs does a cat have?", "Four.")]


class Replica:
    """One ``tuneforge serve`` process; its log goes to ``<tmp>/<name>.log``."""

    def __init__(self, name: str, env: dict, log_dir: Path):
        self.name, self.port = name, free_port()
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "serve", "--port", str(self.port)],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.client = openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="k", max_retries=0)

    def wait_ready(self) -> Replica:
        deadline = time.time() + 120
        while True:
            assert self.proc.poll() is None, f"{self.name} exited: {self.log_path.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, f"{self.name} did not start"
            time.sleep(0.1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def owns(self, worker_id: str | None) -> bool:
        """Worker ids are ``host:pid:random``: does this process hold the lease?"""
        return worker_id is not None and worker_id.split(":")[1] == str(self.proc.pid)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def cluster(postgres_url, tmp_path, models_cache, tiny_model_dir):
    """``start(name)`` runs one more replica on the shared database and folder; ``db`` reads rows directly."""
    from tuneforge.db.session import Database

    env = dict(os.environ, TUNEFORGE_DATABASE_URL=postgres_url, TUNEFORGE_DATA_DIR=str(tmp_path / "shared"),
               TUNEFORGE_MODELS_CACHE_DIR=str(models_cache), TUNEFORGE_LEASE_S=str(LEASE_S),
               TUNEFORGE_WORKER_POLL_S="0.2", TUNEFORGE_TRAIN_THREADS="1", TUNEFORGE_SERVE_THREADS="1",
               TUNEFORGE_EVALS_CONCURRENCY="1", TUNEFORGE_LOG_LEVEL="INFO", TOKENIZERS_PARALLELISM="false")
    started: list[Replica] = []
    db = Database(postgres_url)

    class Cluster:
        def start(self, *names: str) -> list[Replica]:
            """Start replicas (together: start-up is the slow part), each ready when this returns."""
            replicas = [Replica(name, env, tmp_path) for name in names]
            started.extend(replicas)
            for replica in replicas:
                replica.wait_ready()
            if not self.registered:
                replicas[0].client.post("/models", body={"id": "tiny-chat", "path": str(tiny_model_dir)},
                                        cast_to=openai.types.Model)
                self.registered = True
            return replicas

        def row(self, row_type, row_id):
            with db.session() as session:
                row = session.get(row_type, row_id)
                session.expunge_all()
                return row

    cl = Cluster()
    cl.db, cl.registered = db, False
    try:
        yield cl
    finally:
        for replica in started:
            replica.stop()
        db.dispose()


class EventStream:
    """Reads a fine-tuning job's SSE stream (``?stream=true``) in a thread, until the server ends it."""

    def __init__(self, base_url: str, job_id: str):
        self.events: list[dict] = []
        self.ended = threading.Event()
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._read, args=(base_url, job_id), daemon=True)
        self._thread.start()

    def _read(self, base_url: str, job_id: str) -> None:
        try:
            with httpx.stream("GET", f"{base_url}/fine_tuning/jobs/{job_id}/events", params={"stream": "true"},
                              headers={"authorization": "Bearer k"}, timeout=httpx.Timeout(10, read=60)) as resp:
                assert resp.status_code == 200, resp.read()
                for line in resp.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        self.events.append(json.loads(line[6:]))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.ended.set()

    def messages(self) -> list[str]:
        return [e.get("message", "") for e in self.events]


def test_a_job_streams_from_another_replica_and_survives_its_replica_being_killed(cluster, tmp_path):
    from tuneforge.db.models import FineTuningJobRow

    a, = cluster.start("a")
    lines = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": r}]} for q, r in PERSONA]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    train = a.client.files.create(file=("train.jsonl", data), purpose="fine-tune").id
    # 10 examples, batch 5: 2 steps an epoch, a checkpoint at each epoch's end
    job = a.client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, seed=3, method={
        "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 9, "batch_size": 5}}})

    def running_on_a():
        row = cluster.row(FineTuningJobRow, job.id)
        assert row.status not in ("failed", "cancelled", "succeeded"), (row.status, row.error)
        return row.status == "running" and a.owns(row.worker_id)

    wait_until(running_on_a, 60, "replica a claims the job")

    b, = cluster.start("b")  # starting a second replica leaves the first one's job alone
    row = cluster.row(FineTuningJobRow, job.id)
    assert row.status == "running" and a.owns(row.worker_id), row.status
    assert b.client.fine_tuning.jobs.retrieve(job.id).id == job.id  # visible from b
    stream = EventStream(b.base_url, job.id)  # and its events stream from b, a process that never ran it
    wait_until(lambda: (a.client.fine_tuning.jobs.retrieve(job.id).model_extra["tuneforge"]["step"] or 0) >= 5, 240,
          "training past the first checkpoints (steps 2, 4)")
    assert a.owns(cluster.row(FineTuningJobRow, job.id).worker_id)
    wait_until(lambda: any(m.startswith("Checkpoint created") for m in stream.messages()), 30, "events reach b")

    a.kill()
    killed_at = time.time()
    wait_until(lambda: b.owns(cluster.row(FineTuningJobRow, job.id).worker_id), LEASE_S + 10,
          "replica b takes the job over within the lease time")
    took_over_s = time.time() - killed_at
    done = wait_until(lambda: (j := b.client.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed") and j,
                 300, "the job finishes on b")
    assert done.status == "succeeded", done.error
    assert stream.ended.wait(30) and stream.error is None, stream.error
    messages = stream.messages()
    assert any("queued again and resumes from checkpoint step" in m for m in messages), messages
    assert any(m.startswith("Resuming from step") for m in messages), messages
    assert "The job has successfully completed." in messages
    steps = [e["data"]["step"] for e in stream.events if e.get("type") == "metrics"]
    assert steps == list(range(1, 19)), steps  # every step once, in order, across both replicas
    assert took_over_s < LEASE_S + 10


def _eval_run(client, n_items: int):
    items = [{"item": {"q": f"question {i}"}} for i in range(n_items)]
    ev = client.evals.create(data_source_config={"type": "custom", "item_schema": {"type": "object"}},
                             testing_criteria=[{"type": "string_check", "name": "x", "operation": "ne",
                                                "input": "{{sample.output_text}}", "reference": ""}])
    source = {"type": "completions", "model": "tiny-chat", "source": {"type": "file_content", "content": items},
              "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.q}}"}]},
              "sampling_params": {"max_completion_tokens": 24, "temperature": 1.0}}
    return ev.id, client.evals.runs.create(ev.id, data_source=source)


def _finished_items(cluster, run_id: str) -> dict[str, str]:
    from tuneforge.db.models import EvalItemRow

    with cluster.db.session() as session:
        rows = session.query(EvalItemRow).filter(EvalItemRow.run_id == run_id, EvalItemRow.status != "pending")
        return {r.id: r.sample for r in rows}


def _owner(replicas, worker_id):
    return next((r for r in replicas if r.owns(worker_id)), None)


def test_an_eval_run_of_a_killed_replica_is_finished_by_another_without_redoing_items(cluster):
    from tuneforge.db.models import EvalRunRow

    replicas = cluster.start("a", "b")
    eval_id, run = _eval_run(replicas[0].client, 24)
    wait_until(lambda: len(_finished_items(cluster, run.id)) >= 2, 120, "a replica grades a few items")
    holder = _owner(replicas, cluster.row(EvalRunRow, run.id).worker_id)  # whichever claimed it
    survivor = next(r for r in replicas if r is not holder)
    holder.kill()
    before = _finished_items(cluster, run.id)
    assert 2 <= len(before) < 24, "the run should be stopped part-way"
    wait_until(lambda: survivor.owns(cluster.row(EvalRunRow, run.id).worker_id), LEASE_S + 10,
          "the other replica takes the run over within the lease time")
    final = wait_until(lambda: (r := survivor.client.evals.runs.retrieve(run.id, eval_id=eval_id)).status
                  not in ("queued", "in_progress") and r, 300, "the run finishes")
    assert final.status == "completed" and final.result_counts.total == 24
    after = _finished_items(cluster, run.id)
    assert len(after) == 24
    assert {k: after[k] for k in before} == before  # what the killed replica finished was kept, not redone


def test_a_batch_of_a_killed_replica_is_finished_by_another(cluster):
    from tuneforge.db.models import BatchRequestRow, BatchRow

    replicas = cluster.start("a", "b")
    client = replicas[1].client
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "tiny-chat", "max_tokens": 24, "messages": [{"role": "user", "content": f"q{i}"}]}}
             for i in range(24)]
    upload = client.files.create(file=("in.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()),
                                 purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h")

    def answered() -> dict[str, str]:
        with cluster.db.session() as session:
            return {r.custom_id: r.output for r in session.query(BatchRequestRow).filter(
                BatchRequestRow.batch_id == batch.id, BatchRequestRow.status != "pending")}

    wait_until(lambda: len(answered()) >= 2, 120, "a replica answers a few lines")
    holder = _owner(replicas, cluster.row(BatchRow, batch.id).worker_id)
    survivor = next(r for r in replicas if r is not holder)
    holder.kill()
    before = answered()
    assert len(before) < 24
    wait_until(lambda: survivor.owns(cluster.row(BatchRow, batch.id).worker_id), LEASE_S + 10,
          "the other replica takes the batch over within the lease time")
    final = wait_until(lambda: (x := survivor.client.batches.retrieve(batch.id)).status in ("completed", "failed") and x,
                  300, "the batch finishes")
    assert final.status == "completed" and final.request_counts.completed == 24
    output = survivor.client.files.content(final.output_file_id).text.splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in output) == sorted(f"r{i}" for i in range(24))  # each once
    after = answered()
    assert {k: after[k] for k in before} == before


def test_a_background_response_and_an_assistants_run_of_a_killed_replica_are_finished_by_another(cluster):
    """Both are mid-generation on a when it is killed; b (up all along, leaving a's live work alone) runs each
    again once a's lease ran out: the response ends as it would have, the thread has one answer."""
    from tuneforge.db.models import ResponseRow, RunRow

    a, b = cluster.start("a", "b")
    budget = 400  # temperature 0: the tiny model never stops on its own, so each takes its whole budget
    response = a.client.responses.create(model="tiny-chat", input="Tell me everything.", background=True,
                                         max_output_tokens=budget, temperature=0)
    assistant = a.client.beta.assistants.create(model="tiny-chat", instructions="Talk.")
    thread = a.client.beta.threads.create(messages=[{"role": "user", "content": "Tell me everything."}])
    run = a.client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, temperature=0,
                                            max_completion_tokens=budget)

    def held_by(replica, status=("queued", "in_progress")) -> bool:
        rows = cluster.row(ResponseRow, response.id), cluster.row(RunRow, run.id)
        assert all(r.status in ("queued", "in_progress") for r in rows), [(r.status, r.error if isinstance(
            r, ResponseRow) else r.last_error) for r in rows]
        return all(r.status in status and replica.owns(r.worker_id) for r in rows)

    wait_until(lambda: held_by(a, ("in_progress",)), 120, "a works on both")
    time.sleep(LEASE_S / 2)  # b sweeps meanwhile (every lease/3): a's live work stays a's
    assert held_by(a, ("in_progress",)), "both finished before a was killed: nothing was tested"
    a.kill()
    wait_until(lambda: held_by(b), LEASE_S + 10, "b takes both over within the lease time")

    done = wait_until(lambda: (r := b.client.responses.retrieve(response.id)).status not in ("queued", "in_progress")
                      and r, 300, "the response finishes on b")
    assert done.status == "incomplete" and done.error is None, done.error  # as without the kill: budget spent
    assert done.usage.output_tokens == budget and done.output_text
    assert cluster.row(ResponseRow, response.id).takeovers == 1
    finished = wait_until(lambda: (r := b.client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)).status
                          not in ("queued", "in_progress") and r, 300, "the run finishes on b")
    assert finished.status == "incomplete" and finished.usage.completion_tokens == budget, finished.last_error
    answers = [m for m in b.client.beta.threads.messages.list(thread.id).data if m.role == "assistant"]
    assert len(answers) == 1 and answers[0].run_id == run.id and answers[0].content[0].text.value
    steps = b.client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert [(s.type, s.status) for s in steps] == [("message_creation", "completed")]
    assert cluster.row(RunRow, run.id).takeovers == 1
