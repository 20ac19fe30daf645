"""Data-parallel training without Ray: two ranks on torch.distributed (gloo, loopback), spawned here.

Two ranks each training their shard of a batch must produce, after the gradient all-reduce, the
single-process gradients of the whole batch; and a whole 2-rank run the single-process loss curve.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from helpers import chat_lines, dpo_lines

from tuneforge.testing import free_port
from tuneforge.training.config import TrainingConfig
from tuneforge.training.data import ChatFormat, epoch_batches
from tuneforge.training.distributed import Ranks, SilentReporter
from tuneforge.training.trainer import Trainer, load_model


class Losses(SilentReporter):
    def __init__(self):
        self.losses: list[float] = []
        self.checkpoints: list[int] = []

    def metrics(self, step, total, data, message):
        self.losses.append(data["train_loss"])

    def checkpoint(self, step, epoch, folder, metrics):
        self.checkpoints.append(step)


def make_trainer(model_dir: Path, out: Path, method: str, rep, ranks: Ranks | None = None) -> Trainer:
    torch.set_num_threads(1)
    cfg = TrainingConfig(job_id="t", method=method, base_model="tiny", model_path=str(model_dir),
                         parent_adapter=None, seed=3, n_epochs=2, batch_size=3, learning_rate_multiplier=5,
                         learning_rate=1e-3, beta=0.1 if method == "dpo" else None, max_seq_len=512,
                         n_train_examples=12, n_valid_examples=0)
    cfg.extra["train_norms"] = True
    model, tok = load_model(cfg, str(model_dir))
    fmt = ChatFormat.probe(tok)
    cfg.chat_template = fmt.template
    out.mkdir(parents=True, exist_ok=True)
    rows = dpo_lines() if method == "dpo" else chat_lines()
    return Trainer(cfg, model, fmt, rows, [], rep, out, cache_dir=out / "cache", ranks=ranks)


def first_batch(trainer: Trainer) -> list[int]:
    return epoch_batches(trainer.lengths, trainer.cfg.batch_size, trainer.cfg.seed, 0)[0]


def _rank(rank: int, port: int, model_dir: str, out: str, method: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ranks = Ranks(rank=rank, world_size=2, threads=1)
        trainer = make_trainer(Path(model_dir), Path(out) / f"step{rank}", method, SilentReporter(), ranks)
        idx = first_batch(trainer)
        if method == "dpo":
            trainer.ref = {"train": trainer._ref_logps(trainer.train_pairs)}
        loss, acc, tokens, _extra = trainer._sharded_step(idx, 0)
        grads = [p.grad.clone() for p in trainer.params]
        rep = Losses() if rank == 0 else SilentReporter()
        result = make_trainer(Path(model_dir), Path(out) / f"run{rank}", method, rep, ranks).run()
        torch.save({"loss": loss, "acc": acc, "tokens": tokens, "grads": grads, "shard": ranks.shard(idx),
                    "losses": getattr(rep, "losses", None), "checkpoints": getattr(rep, "checkpoints", None),
                    "stats": result.stats, "trained_tokens": result.trained_tokens},
                   Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method", ["supervised", "dpo"])
def test_two_ranks_match_one_process(tiny_model_dir, tmp_path, method):
    single = make_trainer(tiny_model_dir, tmp_path / "single", method, Losses())
    idx = first_batch(single)
    assert len(idx) == 3  # shards of 2 and 1 examples: each rank scales by the whole batch, not its shard
    if method == "dpo":
        single.ref = {"train": single._ref_logps(single.train_pairs)}
        loss, acc, tokens, *_ = single._dpo_batch(idx, single.train_pairs, single.ref["train"], train=True)
    else:
        loss, acc, tokens = single._sft_batch([single.train_set[i] for i in idx], train=True)
    expected = [p.grad.clone() for p in single.params]
    assert any(float(g.abs().sum()) > 0 for g in expected)
    rep = Losses()
    whole = make_trainer(tiny_model_dir, tmp_path / "single-run", method, rep).run()

    mp.start_processes(_rank, args=(free_port(), str(tiny_model_dir), str(tmp_path), method), nprocs=2,
                       join=True, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))

    assert sorted(r0["shard"] + r1["shard"]) == sorted(idx) and not set(r0["shard"]) & set(r1["shard"])
    for got0, got1, want in zip(r0["grads"], r1["grads"], expected, strict=True):
        assert torch.equal(got0, got1)  # summed: the same on both ranks
        torch.testing.assert_close(got0, want, rtol=1e-4, atol=1e-6)
    assert math.isclose(r0["loss"], loss, rel_tol=1e-5) and math.isclose(r1["loss"], loss, rel_tol=1e-5)
    assert math.isclose(r0["acc"], acc, rel_tol=1e-6, abs_tol=1e-9) and r0["tokens"] == tokens

    # a whole run: rank 0 reports the single process's curve and checkpoints; both ranks trained, disjointly
    assert len(r0["losses"]) == len(rep.losses) == 8 and r1["losses"] is None
    for a, b in zip(r0["losses"], rep.losses, strict=True):
        assert math.isclose(a, b, rel_tol=2e-3), (r0["losses"], rep.losses)
    assert r0["checkpoints"] == [4, 8] and r0["trained_tokens"] == whole.trained_tokens
    stats = r0["stats"]
    assert stats["world_size"] == 2 and stats["shard_overlap"] == 0
    assert sum(stats["examples_per_rank"]) == 24 and min(stats["examples_per_rank"]) > 0
    assert sum(stats["tokens_per_rank"]) == whole.trained_tokens
    assert (tmp_path / "run0" / "ckpt-step-8" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "run1" / "ckpt-step-8").exists()  # only rank 0 writes
