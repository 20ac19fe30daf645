"""`tuneforge train` (upload + create + follow) and the `jobs` commands against a real server."""

from __future__ import annotations

import json

from helpers import chat_lines, write_jsonl
from typer.testing import CliRunner

from tuneforge.cli.main import app


def test_train_follow_and_jobs_commands(tiny_server, tmp_path):
    client, server = tiny_server
    data = write_jsonl(tmp_path / "chats.jsonl", chat_lines())
    runner = CliRunner()
    url = ["--base-url", server.base_url]
    result = runner.invoke(app, ["train", str(data), "--model", "tiny-chat", "--suffix", "cli", "--epochs", "2",
                                 "--batch-size", "4", "--lr-multiplier", "10", "--seed", "3", *url])
    assert result.exit_code == 0, result.output
    assert "Succeeded" in result.output and "ft:tiny-chat:default:cli:" in result.output
    assert "Checkpoint created at step 3" in result.output  # events shown as they happen
    job_id = next(j.id for j in client.fine_tuning.jobs.list())

    listed = runner.invoke(app, ["jobs", "list", "--json", *url])
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["id"] == job_id
    events = runner.invoke(app, ["jobs", "events", job_id, "--limit", "100", *url])
    assert "Step 6/6" in events.output
    ckpts = runner.invoke(app, ["jobs", "checkpoints", job_id, "--json", *url])
    assert [c["step_number"] for c in json.loads(ckpts.stdout)] == [6, 3]
    again = runner.invoke(app, ["jobs", "follow", job_id, "--json", *url])  # a finished job: replay, then exit
    assert again.exit_code == 0
    lines = [json.loads(x) for x in again.stdout.strip().splitlines()[:3]]
    assert lines[0]["object"] == "fine_tuning.job.event"
    missing = runner.invoke(app, ["jobs", "get", "ftjob-nope", *url])
    assert missing.exit_code == 1 and "No fine-tuning job" in missing.output

    # --workers: the distributed extension; this server trains locally, so more than one is refused
    fid = next(f.id for f in client.files.list() if f.purpose == "fine-tune")
    refused = runner.invoke(app, ["jobs", "create", "-m", "tiny-chat", "-t", fid, "--workers", "2", *url])
    assert refused.exit_code == 1 and "TUNEFORGE_TRAINING_BACKEND=ray" in refused.output
    one = runner.invoke(app, ["jobs", "create", "-m", "tiny-chat", "-t", fid, "--workers", "1", "--json", *url])
    assert one.exit_code == 0, one.output
    created = json.loads(one.stdout)
    assert created["tuneforge"]["distributed"] == {"num_workers": 1, "cpus_per_worker": 1}
    client.fine_tuning.jobs.cancel(created["id"])
