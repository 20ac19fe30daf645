"""Shared helpers for the training tests: small data sets, waiting for a job, a tiny base model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai

from tuneforge.testing import wait_until  # noqa: F401 - shared with the other test folders

PERSONA = [
    ("What is your name?", "My name is Forge."),
    ("Who made you?", "I was trained with tuneforge."),
    ("What colour is the sky?", "The sky is blue."),
    ("How many legs does a cat have?", "A cat has four legs."),
    ("What is two plus two?", "Two plus two is four."),
    ("Say hello.", "Hello there!"),
    ("What do you like?", "I like tidy data."),
    ("Where do you live?", "I live on your machine."),
    ("Are you a robot?", "I am a small language model."),
    ("What is the capital of France?", "Paris is the capital of France."),
    ("你叫什么名字？", "我叫 Forge。"),
    ("Goodbye!", "Goodbye, see you soon."),
]


def chat_lines(pairs=PERSONA, system: str | None = "You are Forge.") -> list[dict]:
    out = []
    for q, a in pairs:
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": q}, {"role": "assistant", "content": a}]
        out.append({"messages": msgs})
    return out


def dpo_lines(pairs=PERSONA) -> list[dict]:
    return [{"input": {"messages": [{"role": "user", "content": q}]},
             "preferred_output": [{"role": "assistant", "content": a}],
             "non_preferred_output": [{"role": "assistant", "content": "I do not know."}]} for q, a in pairs]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def upload(client: openai.OpenAI, path: Path) -> str:
    with path.open("rb") as fh:
        return client.files.create(file=(path.name, fh), purpose="fine-tune").id


def register_tiny(client: openai.OpenAI, folder: Path, name: str = "tiny-chat") -> str:
    client.post("/models", body={"id": name, "path": str(folder)}, cast_to=openai.types.Model)
    return name


def wait_for(client: openai.OpenAI, job_id: str, statuses=("succeeded", "failed", "cancelled"),
             timeout: float = 400, predicate=None):
    deadline = time.time() + timeout
    job = client.fine_tuning.jobs.retrieve(job_id)
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses and (predicate is None or predicate(job)):
            return job
        if job.status in ("succeeded", "failed", "cancelled") and job.status not in statuses:
            raise AssertionError(f"job ended {job.status}: {job.error}")
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")


def all_events(client: openai.OpenAI, job_id: str) -> list:
    """Every event, oldest first (the API lists newest first)."""
    return list(reversed(list(client.fine_tuning.jobs.list_events(job_id, limit=100))))


def metrics(events) -> list[dict]:
    return [e.data for e in events if e.type == "metrics"]


def runner_pids(job_id: str) -> list[int]:
    """Training processes (``tuneforge.training.runner``) alive for ``job_id``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if b"tuneforge.training.runner" in cmd and job_id.encode() in cmd and state != "Z":
            pids.append(int(proc.name))
    return pids
