"""Single-stream decode levers on SmolLM2-135M-Instruct, in process (not a test).

Each lever is a plain greedy decode loop over the model's forward (what the engine runs per step),
timed in the same process, in alternating rounds (best round counts), and printed as tokens/s and
as a ratio to the fp32 eager loop (``*_vs_fp32``):

  * ``fp32``            fp32 weights, DynamicCache (the engine today on CPU);
  * ``bf16``            bf16 weights and matmuls (AVX512-BF16/AMX CPUs run these natively);
  * ``fp32_static``     fp32 with a preallocated StaticCache (no per-token cache growth);
  * ``engine``          the built-in engine itself (sampling, detokenizing, streaming per token),
                        fp32: ``engine_vs_fp32`` is the engine's own per-token overhead;
  * ``--compile``       adds ``torch.compile`` of the decode step with a StaticCache (fp32 and bf16);
                        compilation time is printed separately and not counted.

    .venv/bin/python benchmarks/decode_levers.py [--tokens 64] [--rounds 3] [--threads N] [--compile]
"""

from __future__ import annotations

import argparse
import os
import queue
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODEL = "smollm2-135m-instruct"
PROMPT = "Tell me a long story about a dragon."


def decode_loop(model, ids, tokens: int, cache=None, step=None) -> float:
    """Greedy tokens/s of ``tokens`` decode steps after a prefill (prefill not timed)."""
    import torch

    with torch.inference_mode():
        n = ids.shape[1]
        kwargs = {"past_key_values": cache} if cache is not None else {}
        if cache is not None:
            kwargs["cache_position"] = torch.arange(n)
        out = model(input_ids=ids, use_cache=True, **kwargs)
        cache = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
        forward = step or model
        started = time.perf_counter()
        for i in range(tokens):
            pos = torch.tensor([n + i])
            out = forward(input_ids=token, past_key_values=cache, use_cache=True, cache_position=pos,
                          position_ids=pos.unsqueeze(0))
            token = out.logits[:, -1:].argmax(-1)
        return tokens / (time.perf_counter() - started)


def engine_rate(engine, ids: list[int], tokens: int, eos: list[int]) -> float:
    from tuneforge.inference.batch import Delta, Finish, GenerationRequest
    from tuneforge.inference.sampling import SamplingParams

    params = SamplingParams(max_tokens=tokens + 1, temperature=0, logit_bias={t: -100.0 for t in eos})
    events: queue.Queue = queue.Queue()
    engine.submit(GenerationRequest(MODEL, None, ids, params), events.put)
    first = None
    while not isinstance(event := events.get(timeout=600), Finish):
        if isinstance(event, Delta) and first is None:
            first = time.perf_counter()  # after the prefill and first token, like the loops above
    return tokens / (time.perf_counter() - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--models-cache", type=Path, default=Path.home() / ".tuneforge" / "models")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, StaticCache

    from tuneforge.db.session import Database
    from tuneforge.inference.engine import Engine
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.settings import Settings

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="tuneforge-decode-"))
    settings = Settings(data_dir=work / "data", models_cache_dir=args.models_cache)
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    registry = ModelRegistry(settings, db)
    path = registry.materialize(MODEL)
    engine = Engine(registry, threads=args.threads)
    info = engine.info(MODEL)
    text = info.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                              tokenize=False)
    prompt = info.tokenizer(text, add_special_tokens=False).input_ids
    ids = torch.tensor([prompt])
    models = {"fp32": AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(),
              "bf16": AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).eval()}
    max_len = len(prompt) + args.tokens + 8

    def static(dtype_name):
        model = models[dtype_name]
        return StaticCache(config=model.config, max_cache_len=max_len)

    levers = {
        "fp32": lambda: decode_loop(models["fp32"], ids, args.tokens),
        "bf16": lambda: decode_loop(models["bf16"], ids, args.tokens),
        "fp32_static": lambda: decode_loop(models["fp32"], ids, args.tokens, cache=static("fp32")),
        "engine": lambda: engine_rate(engine, prompt, args.tokens, sorted(info.eos_ids)),
    }
    if args.compile:
        for name in ("fp32", "bf16"):
            step = torch.compile(models[name].forward, dynamic=False)
            started = time.perf_counter()
            decode_loop(models[name], ids, 4, cache=static(name), step=step)  # compiles
            print(f"compile_seconds_{name}: {time.perf_counter() - started:.1f}", flush=True)
            levers[f"{name}_static_compiled"] = (lambda n=name, s=step: decode_loop(models[n], ids, args.tokens,
                                                                                  cache=static(n), step=s))
    for name, fn in levers.items():  # warm-up (the engine loads its model here)
        if name == "engine":
            engine_rate(engine, prompt, 4, sorted(info.eos_ids))
        else:
            fn()
    best = dict.fromkeys(levers, 0.0)
    for _ in range(args.rounds):
        for name, fn in levers.items():
            best[name] = max(best[name], fn())
    engine.shutdown()
    db.dispose()
    print(f"# {MODEL}, single stream, greedy, {args.tokens} tokens, torch threads {torch.get_num_threads()}, "
          f"best of {args.rounds}")
    for name, rate in best.items():
        print(f"{name}_tok_s: {rate:.1f}")
    for name, rate in best.items():
        if name != "fp32":
            print(f"{name}_vs_fp32: {rate / best['fp32']:.2f}")


if __name__ == "__main__":
    main()
