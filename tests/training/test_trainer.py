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
        self.last = data

    def checkpoint(self, step, epoch, folder, metrics):
        self.checkpoints.append(step)

    def stop_requested(self):
        return self.stop_at is not None and len(self.losses) >= self.stop_at


def make_trainer(model_dir: Path, out: Path, seed: int, rep: Recorder, epochs: int = 2, precision: str = "fp32",
                 valid: list[dict] | None = None) -> Trainer:
    cfg = TrainingConfig(job_id="t", method="supervised", base_model="tiny", model_path=str(model_dir),
                         parent_adapter=None, seed=seed, n_epochs=epochs, batch_size=4, learning_rate_multiplier=5,
                         learning_rate=1e-3, beta=None, max_seq_len=512, n_train_examples=12,
                         n_valid_examples=len(valid or []), precision=precision)
    cfg.extra["train_norms"] = True
    model, tok = load_model(cfg, str(model_dir))
    fmt = ChatFormat.probe(tok)
    cfg.chat_template = fmt.template
    out.mkdir(parents=True, exist_ok=True)
    return Trainer(cfg, model, fmt, chat_lines(), valid or [], rep, out, cache_dir=out / "cache")


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


def test_bf16_autocast_matches_fp32_validation_loss(tiny_model_dir, tmp_path):
    """bf16 matmuls (autocast; weights, gradients and the loss stay fp32) train to the same validation
    loss as fp32 on the same seed and data, within 2 %. Forced to bf16, so it runs on any CPU."""
    from helpers import PERSONA

    valid = chat_lines(PERSONA[::3], system="You are Forge, a helper.")
    runs = {}
    for precision in ("fp32", "bf16"):
        rep = Recorder()
        trainer = make_trainer(tiny_model_dir, tmp_path / precision, 5, rep, epochs=3, precision=precision,
                               valid=valid)
        result = trainer.run()
        assert result.stats["precision"] == precision
        runs[precision] = (rep.losses, rep.last["full_valid_loss"])
    (fp32_curve, fp32_valid), (bf16_curve, bf16_valid) = runs["fp32"], runs["bf16"]
    assert fp32_curve[-1] < fp32_curve[0]  # it learns, so the comparison is about a trained model
    assert bf16_curve != fp32_curve  # bf16 really ran (bitwise-equal curves would mean it did not)
    assert bf16_valid == pytest.approx(fp32_valid, rel=0.02)


def test_auto_precision_follows_the_cpu_flags(tmp_path):
    from tuneforge.training.precision import autocast, cpu_has_bf16, resolve_precision

    with_bf16 = tmp_path / "amx"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    without = tmp_path / "avx2"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert cpu_has_bf16(str(with_bf16)) and not cpu_has_bf16(str(without))
    assert not cpu_has_bf16(str(tmp_path / "missing"))
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    assert resolve_precision("auto") == ("bf16" if cpu_has_bf16() else "fp32")
    with pytest.raises(ValueError):
        resolve_precision("fp8")
    with autocast("bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
