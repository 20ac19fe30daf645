"""Data parallelism for one job over several processes (ranks), on an initialised ``torch.distributed``.

Every rank holds the whole data set and the same LoRA model, draws the same seeded batch order
(``data.epoch_batches``) and trains on its shard of every batch (``idx[rank::world_size]``). Each
rank scales its loss by the *whole* batch's denominator (labelled tokens for SFT, pairs for DPO), so
the gradients summed across ranks (``all_reduce_grads``) are the single-process gradients of the
whole batch; the optimizer then takes the same step on every rank and the weights stay identical.
We all-reduce by hand rather than wrapping the model in ``DistributedDataParallel``: the trainer's
LM-head shortcut calls the backbone and the head directly, which DDP's forward hooks would not see.

Only rank 0 reports (events, metrics, checkpoints, the final model): the others get a
``SilentReporter``. Nothing here imports Ray; ``training.ray_train`` starts the ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Ranks:
    rank: int
    world_size: int
    backend: str = "gloo"
    threads: int | None = None  # torch threads per rank (its reserved CPUs)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, idx: list[int]) -> list[int]:
        """This rank's part of a batch: disjoint across ranks, together the whole batch."""
        return idx[self.rank::self.world_size]

    def sum(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def per_rank(self, value: float) -> list[float]:
        """``value`` of every rank, in rank order."""
        one_hot = [0.0] * self.world_size
        one_hot[self.rank] = float(value)
        return self.sum(one_hot)

    def any(self, flag: bool) -> bool:
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def all_reduce_(self, tensor) -> None:
        import torch.distributed as dist

        dist.all_reduce(tensor)

    def all_reduce_grads(self, params) -> None:
        """Sum the gradients over the ranks, in one flat buffer (one collective per step)."""
        import torch
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]  # an empty shard
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        for p, g in zip(params, _unflatten_dense_tensors(flat, grads), strict=True):
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)

    def broadcast_(self, params) -> None:
        """Rank 0's weights everywhere (as DDP does at wrap time): the ranks start from the same point."""
        import torch
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        tensors = [p.data for p in params]
        flat = _flatten_dense_tensors(tensors)
        dist.broadcast(flat, src=0)
        with torch.no_grad():
            for t, v in zip(tensors, _unflatten_dense_tensors(flat, tensors), strict=True):
                t.copy_(v)


class StopFile:
    """A stop request one process (the Ray job's driver, on SIGTERM) leaves for another (rank 0): a file."""

    def __init__(self, path: Path):
        self.path = path

    def set(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def is_set(self) -> bool:
        return self.path.exists()


class SilentReporter:
    """What ranks other than 0 report: nothing (rank 0 writes everything the API shows)."""

    def event(self, *args, **kwargs) -> None:
        pass

    def metrics(self, *args, **kwargs) -> None:
        pass

    def checkpoint(self, *args, **kwargs) -> None:
        pass

    def stop_requested(self) -> bool:
        return False
