"""Issue #10: deleting a checkpoint model removes it from its job's checkpoint list."""

from __future__ import annotations

import openai
import pytest
from helpers import chat_lines, upload, wait_for, write_jsonl


def test_deleting_a_checkpoint_model_removes_it_from_the_job(tiny_server, tmp_path):
    client, _ = tiny_server
    train = upload(client, write_jsonl(tmp_path / "t.jsonl", chat_lines()))
    job = client.fine_tuning.jobs.create(model="tiny-chat", training_file=train, seed=3,
                                         hyperparameters={"n_epochs": 2, "batch_size": 4})
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert len(checkpoints) == 2
    gone = checkpoints[-1].fine_tuned_model_checkpoint
    assert client.models.delete(gone).deleted is True
    left = [c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints.list(job.id)]
    assert left == [checkpoints[0].fine_tuned_model_checkpoint]
    for model in left:  # every listed checkpoint is still servable
        assert client.models.retrieve(model).id == model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(gone)
