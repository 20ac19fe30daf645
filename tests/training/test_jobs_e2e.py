"""The fine-tuning lifecycle through the official SDK against a real server and worker."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest
import torch
from helpers import PERSONA, all_events, chat_lines, dpo_lines, metrics, upload, wait_for, write_jsonl

HP = {"n_epochs": 5, "batch_size": 2, "learning_rate_multiplier": 10}


def sse_events(url: str) -> list[dict]:
    out = []
    with httpx.stream("GET", url, params={"stream": "true"}, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line == "data: [DONE]":
                return out
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    raise AssertionError("stream ended without [DONE]")


def test_supervised_lifecycle_then_continue_training(tiny_server, tmp_path, tiny_model_dir):
    client, server = tiny_server
    train = upload(client, write_jsonl(tmp_path / "train.jsonl", chat_lines()))
    valid = upload(client, write_jsonl(tmp_path / "valid.jsonl", chat_lines(PERSONA[:10])))
    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, validation_file=valid,
                                         suffix="persona", seed=42, metadata={"team": "a"},
                                         method={"type": "supervised", "supervised": {"hyperparameters": HP}})
    assert job.status == "validating_files" and job.object == "fine_tuning.job" and job.id.startswith("ftjob-")
    assert job.fine_tuned_model is None and job.error is None and job.seed == 42
    assert job.user_provided_suffix == "persona" and job.metadata == {"team": "a"}

    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    name = f"ft:tiny-chat:default:persona:{job.id}"
    assert job.fine_tuned_model == name and job.finished_at >= job.created_at
    assert job.trained_tokens > 0 and job.estimated_finish is None
    assert job.hyperparameters.n_epochs == 5 and job.hyperparameters.batch_size == 2
    assert job.method.type == "supervised" and job.method.supervised.hyperparameters.learning_rate_multiplier == 10

    events = all_events(client, job.id)
    page = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert page.has_more and [e.id for e in page.data] == sorted((e.id for e in page.data), reverse=True)
    messages = [e.message for e in events]
    assert messages[0].startswith("Created fine-tuning job") and "successfully completed" in messages[-1]
    assert any("Files validated" in m for m in messages)
    rows = metrics(events)
    assert [r["step"] for r in rows] == list(range(1, 31))  # 12 examples / 2 = 6 steps x 5 epochs
    for key in ("step", "total_steps", "train_loss", "train_mean_token_accuracy", "valid_loss",
                "valid_mean_token_accuracy"):
        assert key in rows[0]
    assert rows[-1]["total_steps"] == 30 and rows[-1]["valid_loss"] is not None
    assert rows[5]["full_valid_loss"] is not None and rows[4].get("full_valid_loss") is None  # epoch end
    first, last = sum(r["train_loss"] for r in rows[:6]), sum(r["train_loss"] for r in rows[-6:])
    assert last < first * 0.9, (first, last)  # the loss goes down
    stats = next(e for e in events if e.message.startswith("Training completed")).data
    assert stats["tokens_per_second"] > 0 and 0 < stats["mfu"] < 1

    # the live stream (our extension) replays the same events, oldest first, then [DONE]
    streamed = sse_events(f"{server.base_url}/fine_tuning/jobs/{job.id}/events")
    assert [e["id"] for e in streamed] == [e.id for e in events]

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == [30, 24, 18]  # the last 3 epochs
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{name}:ckpt-step-30"
    assert checkpoints[0].metrics.train_loss == rows[-1]["train_loss"] and checkpoints[0].id.startswith("ftckpt_")
    listed = {m.id for m in client.models.list()}
    assert name in listed and f"{name}:ckpt-step-18" in listed
    assert f"{name}:ckpt-step-12" not in listed  # pruned with its folder
    assert not (server.settings.data_dir / "adapters" / job.id / "ckpt-step-12").exists()

    result = client.files.retrieve(job.result_files[0])
    assert result.purpose == "fine-tune-results"
    csv = client.files.content(result.id).text.splitlines()
    assert csv[0] == "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy" and len(csv) == 31

    check_adapter(server.settings.data_dir / "adapters" / job.id / "final", tiny_model_dir)

    # continue training from the fine-tuned model: it starts where the first job ended
    more = client.fine_tuning.jobs.create(model=name, training_file=train, seed=42, suffix="more",
                                          hyperparameters={"n_epochs": 1, "batch_size": 4})
    more = wait_for(client, more.id)
    assert more.status == "succeeded", more.error
    assert more.model == name and more.fine_tuned_model == f"ft:tiny-chat:default:more:{more.id}"
    assert metrics(all_events(client, more.id))[0]["train_loss"] < rows[0]["train_loss"] * 0.9


def check_adapter(folder: Path, base_dir: Path) -> None:
    """The folder contract; the adapter loads with peft, changed, on unchanged base weights, and generates."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in ("adapter_config.json", "adapter_model.safetensors", "chat_template.jinja", "tuneforge_training.json"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "tuneforge_training.json").read_text())
    assert config["end_of_turn_token"] == "<|im_end|>" and config["n_epochs"] == 5 and config["seed"] == 42
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    assert (folder / "chat_template.jinja").read_text() == tokenizer.chat_template

    pristine = AutoModelForCausalLM.from_pretrained(base_dir).state_dict()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), folder)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero: it trained
    base_layer = model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight
    assert torch.equal(base_layer, pristine["model.layers.0.self_attn.q_proj.weight"])
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is your name?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def test_dpo_job(tiny_server, tmp_path):
    client, _ = tiny_server
    train = upload(client, write_jsonl(tmp_path / "prefs.jsonl", dpo_lines()))
    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, seed=1, method={
        "type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 2, "batch_size": 4, "beta": 0.5,
                                                   "learning_rate_multiplier": 20}}})
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.5
    rows = metrics(all_events(client, job.id))
    assert len(rows) == 6 and rows[0]["train_loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2 at the start
    assert rows[-1]["train_loss"] < 0.6 and rows[-1]["train_reward_margin"] > 0
    assert len(list(client.fine_tuning.jobs.checkpoints.list(job.id))) == 2


def test_bad_data_fails_in_validation_with_the_toolkits_findings(tiny_server, tmp_path):
    client, _ = tiny_server
    rows = chat_lines()
    rows[2] = {"messages": [{"role": "user", "content": "no answer"}]}
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, rows)
    path.write_text(path.read_text() + "{not json\n")
    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=upload(client, path))
    job = wait_for(client, job.id, statuses=("failed",), timeout=60)
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert "Line 3" in job.error.message and "Line 13" in job.error.message, job.error.message
    assert job.fine_tuned_model is None and job.finished_at
    assert not list(client.fine_tuning.jobs.checkpoints.list(job.id))
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)
