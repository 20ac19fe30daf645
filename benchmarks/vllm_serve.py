"""Serving SmolLM2-135M-Instruct through tuneforge: the built-in engine vs a vLLM server behind it (not a test).

Both measured over loopback HTTP through ``tuneforge serve`` (so the vLLM figures include tuneforge's
pass-through), greedy, EOS suppressed with ``logit_bias`` so every stream makes ``--tokens`` tokens:
single-stream decode tok/s and TTFT, and aggregate tok/s at 16 concurrent streams, for the base model and
for a fine-tuned adapter (a random LoRA r16 on all linear layers, registered as an ``ft:`` model).
The built-in engine runs first, then vLLM is started (so the two never share the CPU).

Needs ``.venv-vllm`` (``scripts/vllm-venv.sh``).

    .venv/bin/python benchmarks/vllm_serve.py [--tokens 64] [--threads 1] [--models-cache ~/.tuneforge/models]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "serving")]

from serve import MODEL, QUESTIONS, concurrent, make_adapters, register, start_tuneforge, stream_once  # noqa: E402
from vllm_real_support import VllmProcess  # noqa: E402


def run_tuneforge(data_dir: Path, cache: Path, threads: int | None, vllm_url: str | None):
    env = dict(TUNEFORGE_MODELS_CACHE_DIR=str(cache), TUNEFORGE_WORKER_IN_PROCESS="false",
               TUNEFORGE_LOG_LEVEL="WARNING")
    if threads:
        env["TUNEFORGE_SERVE_THREADS"] = str(threads)
    if vllm_url:
        env["TUNEFORGE_VLLM_SERVERS"] = json.dumps({MODEL: vllm_url})
    return start_tuneforge(data_dir, env, timeout_s=900)


def measure(client, adapter: str, tokens: int, bias: dict, streams: int) -> dict:
    out = {}
    for label, model in (("base", MODEL), ("adapter", adapter)):
        stream_once(client, model, QUESTIONS[1], 8, bias)  # loads the model / adapter
        single = min((stream_once(client, model, QUESTIONS[0], tokens, bias) for _ in range(2)),
                     key=lambda r: r["seconds"])
        many = concurrent(client, [model], streams, tokens, bias)
        out[f"{label}_single_decode_tok_s"] = single["decode_tok_s"]
        out[f"{label}_single_ttft_s"] = single["ttft_s"]
        out[f"{label}_aggregate_tok_s_{streams}"] = many["aggregate_tok_s"]
        out[f"{label}_mean_ttft_s_{streams}"] = many["mean_ttft_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the built-in engine")
    parser.add_argument("--models-cache", type=Path, default=Path.home() / ".tuneforge" / "models")
    parser.add_argument("--vllm-dtype", default="float32")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from transformers import AutoTokenizer

    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="tuneforge-vllm-bench-"))
    settings = Settings(data_dir=work / "data", models_cache_dir=args.models_cache)
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    base_path = ModelRegistry(settings, db).materialize(MODEL)
    db.dispose()
    adapter = register(settings.data_dir, args.models_cache, make_adapters(base_path, work / "adapters", 1))[0]
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    eos = {tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>"))}
    bias = {str(t): -100 for t in sorted(eos)}

    figures: dict[str, float] = {}
    server, client = run_tuneforge(settings.data_dir, args.models_cache, args.threads, None)
    try:
        figures.update({f"engine_{k}": v for k, v in measure(client, adapter, args.tokens, bias,
                                                              args.streams).items()})
    except Exception:
        print(f"tuneforge serve exit status: {server.poll()}", file=sys.stderr)
        raise
    finally:
        server.terminate()
        server.wait(30)

    vllm = VllmProcess(Path(base_path), MODEL, work / "vllm.log", extra=("--dtype", args.vllm_dtype))
    try:
        figures["vllm_startup_s"] = vllm.wait_ready()
        server, client = run_tuneforge(settings.data_dir, args.models_cache, args.threads, vllm.url)
        try:
            figures.update({f"vllm_{k}": v for k, v in measure(client, adapter, args.tokens, bias,
                                                                args.streams).items()})
        finally:
            server.terminate()
            server.wait(30)
    finally:
        vllm.stop()
    for label in ("base", "adapter"):
        figures[f"vllm_vs_engine_{label}_single"] = (figures[f"vllm_{label}_single_decode_tok_s"]
                                                     / figures[f"engine_{label}_single_decode_tok_s"])
        key = f"{label}_aggregate_tok_s_{args.streams}"
        figures[f"vllm_vs_engine_{label}_{args.streams}"] = figures[f"vllm_{key}"] / figures[f"engine_{key}"]
    print(f"# vLLM vs built-in engine through tuneforge: {MODEL}, {args.tokens} tokens per stream, greedy, "
          f"EOS suppressed, engine threads {args.threads}, vLLM dtype {args.vllm_dtype}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, value in figures.items():
        print(f"{name}: {value:.3f}")
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
