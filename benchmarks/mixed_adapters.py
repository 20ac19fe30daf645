"""Mixed-adapter batches in the engine, in process (no HTTP): 16 concurrent greedy streams on SmolLM2
spread over 10 LoRA adapters (r16, all linear layers), against 16 base-only streams in the same
process, with the batched LoRA path (``inference/lora_batch.py``) and with peft's per-adapter loop.

Prints ``mixed_batched_vs_base`` (goal >= 0.8) and ``mixed_peft_vs_base`` (the old path) plus the
aggregate tokens/s of each phase. The batched engine's decode steps run through the fused LoRA kernel
(``inference/lora_kernel.py``); a ``bmm`` phase on the same engine with the kernel switched off gives
``mixed_bmm_vs_base`` and ``fused_vs_bmm`` (the kernel's own gain, measured in the same process and engine).
Each phase runs ``--rounds`` times alternately and the best round counts, so a burst of load from other
processes hurts all phases alike.

    .venv/bin/python benchmarks/mixed_adapters.py [--tokens 64] [--rounds 2] [--threads N] [--no-peft]
        [--no-onednn-packed] [--no-fused-lora]
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

from serve import MODEL, QUESTIONS, make_adapters, scratch_registry  # noqa: E402


def run_phase(engine, tokenizer, adapters: list[Path | None], streams: int, tokens: int, eos: list[int]) -> float:
    from tuneforge.inference.batch import Finish, GenerationRequest
    from tuneforge.inference.sampling import SamplingParams

    params = SamplingParams(max_tokens=tokens, temperature=0, logit_bias={t: -100.0 for t in eos})
    sinks = []
    started = time.perf_counter()
    for i in range(streams):
        text = tokenizer.apply_chat_template([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                                             add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False).input_ids
        events: queue.Queue = queue.Queue()
        engine.submit(GenerationRequest(MODEL, adapters[i % len(adapters)], ids, params), events.put)
        sinks.append(events)
    produced = 0
    for events in sinks:
        while not isinstance(event := events.get(timeout=600), Finish):
            pass
        produced += event.completion_tokens
    return produced / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--adapters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--prefix-cache-mb", type=float, default=None,
                        help="the engine's prompt-prefix cache (default: the engine's default; 0: off). Base-only "
                             "streams share one cache key and mixed ones ten, so the cache favours the baseline")
    parser.add_argument("--no-peft", action="store_true", help="skip the (slow) peft phase")
    parser.add_argument("--no-onednn-packed", action="store_true",
                        help="oneDNN on dense weights (TUNEFORGE_SERVE_ONEDNN_PACKED=false; the default before)")
    parser.add_argument("--no-fused-lora", action="store_true",
                        help="decode steps through batched matmuls instead of the fused kernel "
                             "(TUNEFORGE_SERVE_FUSED_LORA=false; the default before)")
    parser.add_argument("--models-cache", type=Path, default=Path.home() / ".tuneforge" / "models")
    args = parser.parse_args()

    import torch

    from tuneforge.inference.engine import Engine

    work, registry = scratch_registry(args.models_cache, "tuneforge-mixed-")
    adapters = make_adapters(registry.materialize(MODEL), work / "adapters", args.adapters)
    cache = {} if args.prefix_cache_mb is None else {"prefix_cache_mb": args.prefix_cache_mb}
    modes = ("batched",) if args.no_peft else ("batched", "peft")
    bmm_phase = not args.no_fused_lora
    engines = {mode: Engine(registry, max_batch_size=args.streams, max_adapters=args.adapters, **cache,
                            threads=args.threads, batched_lora=(mode == "batched"), onednn_packed=not args.no_onednn_packed,
                            fused_lora=not args.no_fused_lora)
               for mode in modes}
    tokenizer = engines["batched"].info(MODEL).tokenizer
    eos = sorted(engines["batched"].info(MODEL).eos_ids)
    for engine in engines.values():  # load the base and every adapter before timing
        run_phase(engine, tokenizer, adapters, len(adapters), 2, eos)
    router = engines["batched"]._bases[MODEL].pool.router
    kernel = router.kernel
    if bmm_phase and kernel is None:
        sys.exit("the fused LoRA kernel did not load (see the log); run with --no-fused-lora")
    best = {"base": 0.0, "batched": 0.0, "peft": 0.0, "bmm": 0.0}
    for _ in range(args.rounds):
        best["base"] = max(best["base"], run_phase(engines["batched"], tokenizer, [None], args.streams,
                                                   args.tokens, eos))
        for mode in modes:
            best[mode] = max(best[mode], run_phase(engines[mode], tokenizer, adapters, args.streams, args.tokens,
                                                   eos))
        if bmm_phase:  # the same engine with its decode steps on the batched matmuls
            router.kernel = None
            best["bmm"] = max(best["bmm"], run_phase(engines["batched"], tokenizer, adapters, args.streams,
                                                     args.tokens, eos))
            router.kernel = kernel
    for engine in engines.values():
        engine.shutdown()
    registry.db.dispose()
    print(f"# {MODEL}, {args.streams} greedy streams x {args.tokens} tokens over {args.adapters} LoRA r16 "
          f"all-linear adapters, torch threads {args.threads or torch.get_num_threads()}, best of {args.rounds}")
    print(f"base_only_tok_s: {best['base']:.1f}")
    print(f"mixed_batched_tok_s: {best['batched']:.1f}")
    if "peft" in engines:
        print(f"mixed_peft_tok_s: {best['peft']:.1f}")
    if bmm_phase:
        print(f"mixed_bmm_tok_s: {best['bmm']:.1f}")
    print(f"mixed_batched_vs_base: {best['batched'] / best['base']:.2f}")
    if bmm_phase:
        print(f"mixed_bmm_vs_base: {best['bmm'] / best['base']:.2f}")
        print(f"fused_vs_bmm: {best['batched'] / best['bmm']:.3f}")
    if "peft" in engines:
        print(f"mixed_peft_vs_base: {best['peft'] / best['base']:.2f}")


if __name__ == "__main__":
    main()
