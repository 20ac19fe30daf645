"""F.linear against oneDNN's inner product on the linear shapes of SmolLM2-135M (not a test).

The engine's ``TUNEFORGE_SERVE_ONEDNN`` lever (inference/onednn.py) in isolation: for 1, 16 and 64 rows
(one decode stream, 16 streams, a prefill chunk) it times the 210 projections of one forward pass
(30 layers x q/k/v/o/gate/up/down, each layer its own random weights so they stream from memory as in
the model) and the tied 49,152 x 576 ``lm_head``, both ways, alternating, best of ``--rounds``. Prints
milliseconds and ``onednn_speedup_*`` (F.linear time / oneDNN time) per row count, and for the projections
with weights packed once for oneDNN (``TUNEFORGE_SERVE_ONEDNN_PACKED``; the tied ``lm_head`` stays dense there)
``packed_speedup_*`` (oneDNN time on the dense weights / on the packed copies).

    .venv/bin/python benchmarks/linear_kernels.py [--threads 2] [--rounds 3] [--rows 1,16,64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

HIDDEN, INTERMEDIATE, KV, LAYERS, VOCAB = 576, 1536, 192, 30, 49152


def best_ms(fn, rounds: int, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - started) / repeat * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", default="1,16,64")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from tuneforge.inference.onednn import _LINEAR, onednn_available, packed_weight

    if not onednn_available():
        sys.exit("this torch build has no working oneDNN linear")
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    shapes = [(HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN),
              (INTERMEDIATE, HIDDEN), (INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE)]
    layers = [[torch.randn(o, i, generator=gen) * 0.05 for o, i in shapes] for _ in range(LAYERS)]
    head = torch.randn(VOCAB, HIDDEN, generator=gen) * 0.05
    print(f"# linear kernels: SmolLM2-135M shapes, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"best of {args.rounds}")
    results, packed_results = {}, {}
    with torch.inference_mode():
        packed_copies = {id(w): packed_weight(w) for ws in layers for w in ws}
        for rows in (int(r) for r in args.rows.split(",")):
            narrow, wide = torch.randn(1, rows, HIDDEN, generator=gen), torch.randn(1, rows, INTERMEDIATE, generator=gen)

            def projections(linear, narrow=narrow, wide=wide):
                for weights in layers:
                    for w in weights:
                        linear(wide if w.shape[1] == INTERMEDIATE else narrow, w)

            def dense(x, w):
                return F.linear(x, w)

            def onednn(x, w):
                return _LINEAR(x, w, None, "none", [], "")

            def packed(x, w):
                return _LINEAR(x, packed_copies[id(w)], None, "none", [], "")

            torch.testing.assert_close(onednn(narrow, head), dense(narrow, head), rtol=1e-4, atol=1e-4)
            w0 = layers[0][4]
            torch.testing.assert_close(packed(narrow, w0), dense(narrow, w0), rtol=1e-4, atol=1e-4)
            repeat = 3 if rows > 16 else 5
            timings = {}
            for name, fn in (("dense", dense), ("onednn", onednn), ("packed", packed)) * 2:
                p = best_ms(lambda fn=fn: projections(fn), args.rounds, repeat)
                h = best_ms(lambda fn=fn, x=narrow: fn(x, head), args.rounds, repeat) if name != "packed" else 0.0
                old = timings.get(name, (float("inf"), float("inf")))
                timings[name] = (min(old[0], p), min(old[1], h))
            (dp, dh), (op, oh), (pp, _) = timings["dense"], timings["onednn"], timings["packed"]
            print(f"rows_{rows}: projections F.linear {dp:.1f} ms, oneDNN {op:.1f} ms, oneDNN packed {pp:.1f} ms; "
                  f"lm_head F.linear {dh:.1f} ms, oneDNN {oh:.1f} ms")
            results[rows] = (dp + dh) / (op + oh)
            packed_results[rows] = op / pp
    for rows, ratio in results.items():
        print(f"onednn_speedup_{rows}: {ratio:.2f}")
    for rows, ratio in packed_results.items():
        print(f"packed_speedup_{rows}: {ratio:.2f}")


if __name__ == "__main__":
    main()
