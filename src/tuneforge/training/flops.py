"""Training FLOPs and MFU: achieved FLOP/s over this machine's *measured* peak matmul FLOP/s.

The peak is measured once per (device, dtype, threads, torch version) with a large square matmul
and cached in ``<data_dir>/cache/peak_flops.json``: vendor peaks are meaningless on a shared
2-core VM, and what we want to know is how close training gets to what matmuls reach here.

FLOPs counted for a LoRA step (per token, N = frozen matmul weights in the transformer blocks):
forward 2N, backward 2N for the activation gradients (frozen weights need no weight gradient),
LoRA matrices 6 x their size, attention scores 4·L·d·seq forward and 8·L·d·seq backward, and
the LM head 6·d·V only on the positions that carry a label (the trainer skips the rest).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_peak_flops(dtype_name: str = "float32", device: str = "cpu", seconds: float = 1.0) -> float:
    """The best matmul rate seen in ``seconds`` of square matmuls.

    The size grows from 256 until one matmul takes ~0.1 s (at most 2048 on CPU, 8192 on GPU): a dtype
    the hardware only emulates (bf16 on a CPU without AVX512-BF16/AMX runs at ~0.3 GFLOP/s) would
    otherwise spend minutes on a single 2048 x 2048 product."""
    import torch

    dtype = getattr(torch, dtype_name)
    top = 2048 if device == "cpu" else 8192

    def one(n: int, a, b) -> float:
        start = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    n = 256
    while True:
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        one(n, a, b)  # warm-up: thread pool, caches, kernel selection
        if n >= top or one(n, a, b) >= 0.1:
            break
        n *= 2
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        best = max(best, 2 * n ** 3 / one(n, a, b))
    return best


def peak_flops(cache_dir: Path, dtype_name: str = "float32", device: str = "cpu", *, remeasure: bool = False
               ) -> float:
    """The cached measured peak, measuring it the first time.

    ``remeasure`` measures again and keeps the higher value: on a shared machine a measurement
    taken while others are busy reads low, and a low peak would overstate MFU."""
    import torch

    key = f"{device}|{_cpu_name() if device == 'cpu' else torch.cuda.get_device_name()}|{dtype_name}|" \
          f"threads={torch.get_num_threads()}|torch={torch.__version__}"
    path = cache_dir / "peak_flops.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache and not remeasure:
        return float(cache[key])
    value = max(measure_peak_flops(dtype_name, device, seconds=3.0 if remeasure else 1.0), float(cache.get(key, 0)))
    cache[key] = value
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(cache, indent=1))
    os.replace(tmp, path)
    return value


class FlopCounter:
    """Counts a LoRA model's training FLOPs from token counts (see module notes)."""

    def __init__(self, model):
        cfg = model.config
        self.layers = int(getattr(cfg, "num_hidden_layers", 0) or 0)
        self.d = int(getattr(cfg, "hidden_size", 0) or 0)
        self.vocab = int(getattr(cfg, "vocab_size", 0) or 0)
        frozen = lora = 0
        for name, p in model.named_parameters():
            if p.ndim != 2 or "embed" in name or "lm_head" in name:
                continue
            if "lora_" in name:
                lora += p.numel()
            else:
                frozen += p.numel()
        self.frozen, self.lora = frozen, lora
        self.total = 0.0

    def add_step(self, tokens: int, sum_sq_len: int, labelled: int, *, forward_only: bool = False) -> float:
        """``sum_sq_len``: sum over sequences of length² (attention grows with it)."""
        attn = 4 * self.layers * self.d * sum_sq_len
        head = 2 * self.d * self.vocab * labelled
        if forward_only:
            flops = 2 * self.frozen * tokens + 2 * self.lora * tokens + attn + head
        else:
            flops = 4 * self.frozen * tokens + 6 * self.lora * tokens + 3 * attn + 3 * head
        self.total += flops
        return flops
