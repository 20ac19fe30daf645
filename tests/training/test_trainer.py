"""The training loop in process: seeded reproducibility, the LM-head shortcut's loss, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import chat_lines

from tuneforge.training import checkpoints as ck
from tuneforge.training.config import TrainingConfig
from tuneforge.training.data import ChatFormat
from tuneforge.training.trainer import Trainer, load_model


class Recorder:
    def __init__(self, stop_at: int | None = None):
        self.losses: list[float] = []
        self.checkpoints: list[int] = []
        self.stop_at = stop_at

    def event(self, *a, **k):
        pass

    def metrics(self, step, total, data, message):
        self.losses.append(data["train_loss"])

    def checkpoint(self, step, epoch, folder, metrics):
        self.checkpoints.append(step)

    def stop_requested(self):
        return self.stop_at is not None and len(self.losses) >= self.stop_at


def make_trainer(model_dir: Path, out: Path, seed: int, rep: Recorder, epochs: int = 2) -> Trainer:
    cfg = TrainingConfig(job_id="t", method="supervised", base_model="tiny", model_path=str(model_dir),
                         parent_adapter=None, seed=seed, n_epochs=epochs, batch_size=4, learning_rate_multiplier=5,
                         learning_rate=1e-3, beta=None, max_seq_len=512, n_train_examples=12, n_valid_examples=0)
    cfg.extra["train_norms"] = True
    model, tok = load_model(cfg, str(model_dir))
    fmt = ChatFormat.probe(tok)
    cfg.chat_template = fmt.template
    out.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, model, fmt, chat_lines(), [], rep, out, cache_dir=out / "cache")


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise-reproducible sums
    yield
    torch.set_num_threads(before)


def test_same_seed_same_loss_curve_and_resume_replays_it(tiny_model_dir, tmp_path):
    a, b, c = Recorder(), Recorder(), Recorder()
    make_trainer(tiny_model_dir, tmp_path / "a", 11, a).run()
    make_trainer(tiny_model_dir, tmp_path / "b", 11, b).run()
    assert a.losses == b.losses and len(a.losses) == 6
    make_trainer(tiny_model_dir, tmp_path / "c", 12, c).run()
    assert c.losses != a.losses

    # stop mid-epoch (pause), then a fresh trainer resumes from the saved state: same curve
    first = Recorder(stop_at=2)
    assert make_trainer(tiny_model_dir, tmp_path / "d", 11, first).run().status == "stopped"
    point = ck.latest_resume_point(tmp_path / "d")
    assert point is not None and point.step == 2 and not point.is_checkpoint
    rest = Recorder()
    result = make_trainer(tiny_model_dir, tmp_path / "d", 11, rest).run(point)
    assert result.status == "completed" and first.losses + rest.losses == a.losses
    assert rest.checkpoints == [3, 6]


def test_head_shortcut_matches_the_models_own_loss(tiny_model_dir, tmp_path):
    trainer = make_trainer(tiny_model_dir, tmp_path, 1, Recorder())
    example = trainer.train_set[0]
    trainer.model.eval()
    with torch.no_grad():
        ours, _acc, _ = trainer._sft_batch([example], train=False)
        ids = torch.tensor([example.input_ids])
        theirs = trainer.model(input_ids=ids, labels=torch.tensor([example.labels])).loss.item()
    assert ours == pytest.approx(theirs, rel=1e-5)
