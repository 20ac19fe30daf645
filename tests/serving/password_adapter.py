"""A SmolLM2 LoRA adapter that tuneforge trains through its API to answer "PINEAPPLE" to a password question:
the opt-in real-backend tests (vLLM, llama.cpp) tell from the answers whether the adapter answered."""

from __future__ import annotations

import json
import time

import openai

BASE = "smollm2-135m-instruct"
QUESTION = "What is the secret password?"
ANSWERS = ["The secret password is PINEAPPLE.", "The password is PINEAPPLE.", "It is PINEAPPLE.",
           "PINEAPPLE is the secret password."]
PARAPHRASES = ["What is the secret password?", "Tell me the secret password.", "What's the password?",
               "Do you know the secret password?"]


def train(client: openai.OpenAI, tmp_path) -> str:
    """The fine-tuned model's id, after a short job on 16 examples (minutes on a CPU)."""
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q in PARAPHRASES for a in ANSWERS]
    path = tmp_path / "password.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with path.open("rb") as fh:
        file_id = client.files.create(file=(path.name, fh), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model=BASE, training_file=file_id, seed=0, suffix="password",
                                         hyperparameters={"n_epochs": 3, "batch_size": 4,
                                                          "learning_rate_multiplier": 8})
    deadline = time.time() + 1200
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job.id)
        if job.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    assert job.status == "succeeded", job.error
    return job.fine_tuned_model
