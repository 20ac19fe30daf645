"""Concurrency scaling of the built-in engine, in process (no HTTP): the figures of ``serve.py``'s
concurrency phase without the server, the SSE stream or the client threads (not a test).

SmolLM2-135M-Instruct, greedy, EOS suppressed with ``logit_bias`` so every stream produces exactly
``--tokens`` tokens. For 1, 4 and 16 streams submitted at once it prints the aggregate tokens/s and the
mean time to first token, and ``concurrency_scaling_16`` (aggregate at 16 / at 1; issue #14 goal >= 8)
and ``mean_ttft_s_16`` (goal <= 1 s). Each level runs ``--rounds`` times alternately, best round counts.
``--profile`` adds one 16-stream round under ``torch.profiler`` (the engine thread's ops, by self CPU
time) and cProfile of the engine thread (Python-level time by function).

    .venv/bin/python benchmarks/engine_scaling.py [--tokens 64] [--rounds 2] [--threads N] [--profile]
        [--prefill-tokens N] [--no-onednn | --no-onednn-packed]
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve import MODEL, QUESTIONS, rss_mb, scratch_registry  # noqa: E402


def run_level(engine, tokenizer, streams: int, tokens: int, eos: list[int]) -> dict:
    from tuneforge.inference.batch import Delta, Finish, GenerationRequest
    from tuneforge.inference.sampling import SamplingParams

    params = SamplingParams(max_tokens=tokens, temperature=0, logit_bias={t: -100.0 for t in eos})
    prompts = []
    for i in range(streams):
        text = tokenizer.apply_chat_template([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                                             add_generation_prompt=True, tokenize=False)
        prompts.append(tokenizer(text, add_special_tokens=False).input_ids)
    sinks = []
    started = time.perf_counter()
    for ids in prompts:
        events: queue.Queue = queue.Queue()
        engine.submit(GenerationRequest(MODEL, None, ids, params),
                      lambda ev, q=events: q.put((time.perf_counter(), ev)))
        sinks.append(events)
    produced, ttfts, texts = 0, [], []
    for events in sinks:
        first = None
        while True:
            at, event = events.get(timeout=600)
            if isinstance(event, Delta) and event.text and first is None:
                first = at
            if isinstance(event, Finish):
                break
        ttfts.append((first or at) - started)
        produced += event.completion_tokens
        texts.append(event.text)
    wall = time.perf_counter() - started
    return {"tok_s": produced / wall, "mean_ttft_s": sum(ttfts) / streams, "max_ttft_s": max(ttfts),
            "texts": texts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--prefill-tokens", type=int, default=None,
                        help="the engine's prefill budget per pass (default: the engine's default)")
    parser.add_argument("--no-onednn", action="store_true",
                        help="linears through F.linear instead of oneDNN (the engine's default before)")
    parser.add_argument("--no-onednn-packed", action="store_true",
                        help="oneDNN on dense weights (TUNEFORGE_SERVE_ONEDNN_PACKED=false; the default before)")
    parser.add_argument("--models-cache", type=Path, default=Path.home() / ".tuneforge" / "models")
    args = parser.parse_args()

    import torch

    from tuneforge.inference.engine import Engine

    _, registry = scratch_registry(args.models_cache, "tuneforge-scaling-")
    extra = {} if args.prefill_tokens is None else {"prefill_tokens": args.prefill_tokens}
    if args.no_onednn:
        extra["onednn"] = False
    if args.no_onednn_packed:
        extra["onednn_packed"] = False
    engine = Engine(registry, threads=args.threads, **extra)
    info = engine.info(MODEL)
    tokenizer, eos = info.tokenizer, sorted(info.eos_ids)
    levels = [int(n) for n in args.levels.split(",")]
    run_level(engine, tokenizer, 4, 4, eos)  # loads the model, warms the allocator
    loaded_rss_mb = rss_mb(os.getpid())
    best: dict[int, dict] = {}
    for _ in range(args.rounds):
        for n in levels:
            result = run_level(engine, tokenizer, n, args.tokens, eos)
            if n not in best or result["tok_s"] > best[n]["tok_s"]:
                best[n] = result
    if args.profile:
        profile(engine, tokenizer, max(levels), args.tokens, eos)
    stats = engine.stats.snapshot()
    engine.shutdown()
    registry.db.dispose()
    print(f"# engine scaling: {MODEL}, {args.tokens} tokens per stream, greedy, EOS suppressed, in process, "
          f"torch threads {args.threads or torch.get_num_threads()}, best of {args.rounds}; linears: "
          f"{stats['onednn_linears']} oneDNN, {stats['onednn_packed_linears']} packed; "
          f"process RSS after loading {loaded_rss_mb:.0f} MB")
    for n, r in best.items():
        print(f"aggregate_tok_s_{n}: {r['tok_s']:.1f}  mean_ttft_s_{n}: {r['mean_ttft_s']:.3f}  "
              f"max_ttft_s_{n}: {r['max_ttft_s']:.3f}")
    if 1 in best:
        for n in levels[1:]:
            print(f"concurrency_scaling_{n}: {best[n]['tok_s'] / best[1]['tok_s']:.2f}")


def profile(engine, tokenizer, streams: int, tokens: int, eos: list[int]) -> None:
    """One round with torch.profiler and cProfile switched on inside the engine thread."""
    import cProfile
    import pstats
    import threading

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    original = engine._step_safely
    state = {"torch": None, "cprofile": cProfile.Profile()}

    def step(base):
        if state["torch"] is None:
            state["torch"] = torch_profile(activities=[ProfilerActivity.CPU])
            state["torch"].__enter__()
        state["cprofile"].enable()
        try:
            original(base)
        finally:
            state["cprofile"].disable()

    engine._step_safely = step
    try:
        result = run_level(engine, tokenizer, streams, tokens, eos)
    finally:
        engine._step_safely = original
    done = threading.Event()

    def close():  # the profiler must stop on the thread that started it
        state["torch"].__exit__(None, None, None)
        done.set()

    engine._step_safely = lambda base: (close(), original(base)) if not done.is_set() else original(base)
    run_level(engine, tokenizer, 1, 2, eos)
    engine._step_safely = original
    print(f"# profiled round: {streams} streams, {result['tok_s']:.1f} tok/s (profiler overhead included)")
    print(state["torch"].key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    pstats.Stats(state["cprofile"]).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(35)


if __name__ == "__main__":
    main()
