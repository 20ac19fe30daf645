"""How much a fused grouped-LoRA kernel could win on this CPU (a probe for issue #14's mixed-adapter goal, not
a test and not used by the engine).

One decode step of SmolLM2-135M with 16 rows over 10 adapters (r16, all linear layers): the 210 projections
(30 layers x q/k/v/o/gate/up/down, each its own random weights, packed for oneDNN as the engine serves them),
each followed by its LoRA delta computed

- ``bmm``: as ``inference/lora_batch.py`` does it (gather the rows into one group per adapter, two batched
  matmuls against the layer's stacked A and B, gather the deltas back and add);
- ``fused_f32``: by the engine's fused kernel (``inference/lora_kernel.py``, numba), one call per layer that
  reads each adapter's A and B once, multiplies its rows and adds into the base output in place (no gathers,
  no intermediate tensors; the same float32 stacks);
- ``fused_bf16``: the same kernel on stacks held as bfloat16 (half the bytes), widened to float32 in registers.

and ``read_only``: a numba pass that only sums the float32 stacks, the memory-bandwidth floor of any kernel that
reads them. Prints the milliseconds each adds to the base-only step (best of ``--rounds``, alternating) and the
largest deviation of each kernel's output from the ``bmm`` path's.

    .venv/bin/python benchmarks/grouped_lora_kernel.py [--rounds 5] [--rows 16] [--adapters 10] [--rank 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

HIDDEN, INTERMEDIATE, KV, LAYERS = 576, 1536, 192, 30
SHAPES = [(HIDDEN, HIDDEN), (HIDDEN, KV), (HIDDEN, KV), (HIDDEN, HIDDEN),
          (HIDDEN, INTERMEDIATE), (HIDDEN, INTERMEDIATE), (INTERMEDIATE, HIDDEN)]  # (in, out)


def probes():
    """The two experiments beside the engine's kernel: bfloat16 stacks, and the bandwidth floor."""
    import numpy as np
    from numba import njit, prange

    @njit(parallel=True, boundscheck=False)
    def fused_bf16(x, out, a, b, starts, rows):
        """The engine's kernel on stacks of bfloat16 bits (uint16): each row of A or B is widened once into a float32
        scratch row (a shift), which stays in cache for the rows that use it."""
        for u in prange(a.shape[0]):
            first, count = starts[u], starts[u + 1] - starts[u]
            if count == 0:
                continue
            rank, width = a.shape[2], b.shape[2]
            low = np.zeros((count, rank), dtype=np.float32)
            bits = np.empty(max(rank, width), dtype=np.uint32)
            wide = bits.view(np.float32)
            for k in range(a.shape[1]):
                for j in range(rank):
                    bits[j] = np.uint32(a[u, k, j]) << 16
                for i in range(count):
                    xv = x[rows[first + i], k]
                    for j in range(rank):
                        low[i, j] += xv * wide[j]
            for j in range(rank):
                for n in range(width):
                    bits[n] = np.uint32(b[u, j, n]) << 16
                for i in range(count):
                    target = out[rows[first + i]]
                    hv = low[i, j]
                    for n in range(width):
                        target[n] += hv * wide[n]

    @njit(parallel=True, fastmath=True, boundscheck=False)  # fastmath: lets the sums vectorize
    def read_only(a, b, sink):
        for u in prange(a.shape[0]):
            sink[u] += a[u].sum() + b[u].sum()

    return fused_bf16, read_only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--adapters", type=int, default=10)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch and numba threads (default: torch's)")
    args = parser.parse_args()
    try:
        import numba
    except ImportError:
        sys.exit("this probe needs numba (in the [serve] extra)")
    import numpy as np
    import torch
    import torch.nn.functional as F

    from tuneforge.inference.lora_kernel import load
    from tuneforge.inference.onednn import _LINEAR, onednn_available, packed_weight

    if args.threads:
        torch.set_num_threads(args.threads)
    numba.set_num_threads(torch.get_num_threads())
    fused_f32, (fused_bf16, read_only) = load(), probes()
    if fused_f32 is None:
        sys.exit("the fused kernel does not compile here (see the log above)")
    gen = torch.Generator().manual_seed(0)
    adapters, rank, rows = args.adapters, args.rank, args.rows
    layers = []
    for _ in range(LAYERS):
        for n_in, n_out in SHAPES:
            w = torch.randn(n_out, n_in, generator=gen) * 0.05
            a = torch.randn(adapters, n_in, rank, generator=gen) * 0.05
            b = torch.randn(adapters, rank, n_out, generator=gen) * 0.05
            bf = (a.bfloat16().view(torch.int16).numpy().view(np.uint16),
                  b.bfloat16().view(torch.int16).numpy().view(np.uint16))
            layers.append((packed_weight(w) if onednn_available() else w, a, b, bf))
    inputs = {n: torch.randn(rows, n, generator=gen) for n in (HIDDEN, INTERMEDIATE)}

    # row r uses adapter r % adapters, as the serving benchmarks spread their streams
    owner = [r % adapters for r in range(rows)]
    groups = [[r for r in range(rows) if owner[r] == u] for u in range(adapters)]
    width = max(len(g) for g in groups)
    gather = torch.tensor([(g + [g[0]] * width)[:width][j] for g in groups for j in range(width)])
    slot = torch.tensor([u * width + groups[u].index(r) for r, u in enumerate(owner)])
    order = np.array([r for g in groups for r in g], dtype=np.int64)
    starts = np.cumsum([0] + [len(g) for g in groups]).astype(np.int64)
    sink = np.zeros(adapters, dtype=np.float32)

    def base(x, w):
        return _LINEAR(x, w, None, "none", [], "") if w.is_mkldnn else F.linear(x, w)

    def step(delta):
        outs = []
        for w, a, b, bf in layers:
            x = inputs[a.shape[1]]
            out = base(x, w)
            if delta is not None:
                delta(x, out, a, b, bf)
            outs.append(out)
        return outs

    def bmm(x, out, a, b, bf):
        grouped = x.index_select(0, gather).view(adapters, width, -1)
        low = torch.bmm(torch.bmm(grouped, a), b).view(adapters * width, -1)
        out.add_(low.index_select(0, slot))

    def f32(x, out, a, b, bf):
        fused_f32(x.numpy(), out.numpy(), a.numpy(), b.numpy(), starts, order)

    def bf16(x, out, a, b, bf):
        fused_bf16(x.numpy(), out.numpy(), bf[0], bf[1], starts, order)

    def read(x, out, a, b, bf):
        read_only(a.numpy(), b.numpy(), sink)

    paths = {"base_only": None, "bmm": bmm, "fused_f32": f32, "fused_bf16": bf16, "read_only": read}
    stack_mb = sum(a.numel() + b.numel() for _, a, b, _ in layers) * 4 / 1e6
    print(f"# grouped LoRA: {rows} rows over {adapters} adapters, r{rank}, SmolLM2-135M shapes "
          f"({stack_mb:.0f} MB of float32 stacks), torch {torch.__version__}, numba {numba.__version__}, "
          f"threads {torch.get_num_threads()}, best of {args.rounds}")
    with torch.inference_mode():
        reference = step(bmm)
        for name in ("fused_f32", "fused_bf16"):
            got = step(paths[name])  # also compiles the kernel before timing
            worst = max((g - r).abs().max().item() for g, r in zip(got, reference, strict=True))
            print(f"{name}: largest deviation from bmm {worst:.2e}")
        step(read)
        best = dict.fromkeys(paths, float("inf"))
        for _ in range(args.rounds):
            for name, delta in paths.items():
                started = time.perf_counter()
                for _ in range(3):
                    step(delta)
                best[name] = min(best[name], (time.perf_counter() - started) / 3 * 1000)
    print(f"base_only: {best['base_only']:.1f} ms per step")
    for name in ("bmm", "fused_f32", "fused_bf16", "read_only"):
        extra = best[name] - best["base_only"]
        print(f"{name}: +{extra:.1f} ms ({best['base_only'] / best[name]:.2f} of the base-only step's speed)")


if __name__ == "__main__":
    main()
