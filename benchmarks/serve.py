"""Serving benchmark on the bundled SmolLM2-135M-Instruct over loopback HTTP (not a test).

Measures, in one run:
  * single-stream decode tokens/s and time to first token through the server (streaming SSE), against
    plain ``transformers`` ``generate()`` on the same prompt in this process -> ``decode_ratio``;
  * aggregate tokens/s at 1, 4 and 16 concurrent streams -> ``concurrency_scaling_16`` (goal >= 8);
  * 16 concurrent streams spread over 10 different LoRA adapters of the same base (mixed batches), timed
    after one short request per adapter has loaded all ten (loading is not part of the mixed figure);
  * server RSS with 1 and with 10 adapters loaded vs the adapter size (goal: base + 10 x adapter):
    ``rss_10_adapters_loaded_mb`` right after the ten warm-ups, ``rss_10_adapters_mb`` after the mixed
    phase (with batched LoRA's stacked copies of the 10-adapter mix, as measured before).

End-of-sequence is suppressed with ``logit_bias`` (and ``suppress_tokens`` in the baseline) so every
stream produces exactly ``--tokens`` tokens. The server runs as a separate process (``tuneforge serve``)
so client work does not compete with it for the GIL.

    .venv/bin/python benchmarks/serve.py [--tokens 64] [--models-cache ~/.tuneforge/models]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODEL = "smollm2-135m-instruct"
QUESTIONS = ["Tell me a long story about a dragon.", "Explain how a bicycle works.", "Describe the ocean.",
             "Write a poem about autumn.", "What do cats like to do?", "How do plants grow?",
             "Explain photosynthesis in detail.", "Describe a busy city street.", "Why is the sky blue?",
             "Tell me about the history of bread.", "What makes a good friend?", "Describe a winter morning.",
             "How does a computer work?", "What is music?", "Describe a walk in the forest.",
             "Why do we sleep?"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_adapters(base_path: str, out: Path, count: int) -> list[Path]:
    """``count`` LoRA adapters (r16, all linear layers) with small random weights, like trained ones."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    paths = []
    for i in range(count):
        torch.manual_seed(i)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_" in name:
                    param.normal_(0, 0.01)
        path = out / f"adapter{i}"
        peft_model.save_pretrained(path)
        paths.append(path)
    del peft_model, model
    return paths


def register(data_dir: Path, cache: Path, adapters: list[Path]) -> list[str]:
    from tuneforge.db.session import Database
    from tuneforge.models import catalog
    from tuneforge.projects import get_or_create_project
    from tuneforge.settings import Settings

    settings = Settings(data_dir=data_dir, models_cache_dir=cache)
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    ids = []
    with db.session() as session:
        project = get_or_create_project(session, "default")
        for i, path in enumerate(adapters):
            model_id = f"ft:{MODEL}:default:bench{i}:ftjob-bench{i}"
            catalog.register_fine_tuned(session, model_id=model_id, project_id=project.id, base_model=MODEL,
                                        adapter_dir=path, settings=settings)
            ids.append(model_id)
    db.dispose()
    return ids


def baseline(base_path: str, tokens: int) -> dict:
    """Plain transformers generate(), greedy, same chat prompt, EOS suppressed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).eval()
    text = tokenizer.apply_chat_template([{"role": "user", "content": QUESTIONS[0]}], add_generation_prompt=True,
                                         tokenize=False)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    eos = sorted({tokenizer.eos_token_id, *(tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>"))})
    kwargs = dict(do_sample=False, suppress_tokens=eos, pad_token_id=eos[0])
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=4, **kwargs)  # warm-up
        started = time.perf_counter()
        model.generate(**ids, max_new_tokens=1, **kwargs)
        ttft = time.perf_counter() - started
        started = time.perf_counter()
        out = model.generate(**ids, max_new_tokens=tokens, **kwargs)
        total = time.perf_counter() - started
    produced = out.shape[1] - ids["input_ids"].shape[1]
    del model
    return {"ttft_s": ttft, "decode_tok_s": (produced - 1) / max(total - ttft, 1e-9), "tokens": produced,
            "eos": eos}


def stream_once(client, model: str, question: str, tokens: int, bias: dict) -> dict:
    started = time.perf_counter()
    first = last = None
    count = 0
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                            max_tokens=tokens, temperature=0, logit_bias=bias, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        now = time.perf_counter()
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or now
            last = now
        if chunk.usage is not None:
            count = chunk.usage.completion_tokens
    return {"ttft_s": first - started, "decode_tok_s": (count - 1) / max(last - first, 1e-9), "tokens": count,
            "seconds": last - started}


def concurrent(client, models: list[str], streams: int, tokens: int, bias: dict) -> dict:
    results: list[dict] = [None] * streams

    def run(i: int) -> None:
        results[i] = stream_once(client, models[i % len(models)], QUESTIONS[i % len(QUESTIONS)], tokens, bias)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    total = sum(r["tokens"] for r in results)
    return {"streams": streams, "tokens": total, "wall_s": wall, "aggregate_tok_s": total / wall,
            "mean_ttft_s": sum(r["ttft_s"] for r in results) / streams,
            "max_ttft_s": max(r["ttft_s"] for r in results)}


def scratch_registry(models_cache: Path, prefix: str):
    """A throwaway data folder with a migrated database and the model registry over it (bundled models
    from ``models_cache``). Returns (work folder, registry); ``registry.db.dispose()`` when done."""
    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry
    from tuneforge.settings import Settings

    work = Path(tempfile.mkdtemp(prefix=prefix))
    settings = Settings(data_dir=work / "data", models_cache_dir=models_cache)
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    return work, ModelRegistry(settings, db)


def start_tuneforge(data_dir: Path, env: dict, *, wait_s: float = 120, timeout_s: float = 600):
    """``tuneforge serve`` on a free loopback port as a child process (``env`` added to this one's), and an
    OpenAI client once it answers; exits the benchmark if it does not come up within ``wait_s``."""
    from openai import OpenAI

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "serve", "--port", str(port),
                               "--data-dir", str(data_dir)], env=dict(os.environ, **env))
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0, timeout=timeout_s)
    deadline = time.time() + wait_s
    while True:
        try:
            client.models.list()
            return server, client
        except Exception:  # noqa: BLE001 - not up yet
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("tuneforge did not start") from None
            time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--models-cache", type=Path, default=Path.home() / ".tuneforge" / "models")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both the baseline and the server (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


    work, registry = scratch_registry(args.models_cache, "tuneforge-bench-")
    settings = registry.settings
    base_path = registry.materialize(MODEL)  # converts the GGUF once if needed
    registry.db.dispose()

    adapters = make_adapters(base_path, work / "adapters", 10)
    adapter_mb = sum(p.stat().st_size for p in adapters[0].iterdir()) / 2**20
    model_ids = register(settings.data_dir, args.models_cache, adapters)
    base = baseline(base_path, args.tokens)
    bias = {str(t): -100 for t in base["eos"]}

    env = dict(TUNEFORGE_MODELS_CACHE_DIR=str(args.models_cache), TUNEFORGE_SERVE_MAX_ADAPTERS="10",
               TUNEFORGE_WORKER_IN_PROCESS="false", TUNEFORGE_LOG_LEVEL="WARNING")
    if args.threads:
        env["TUNEFORGE_SERVE_THREADS"] = str(args.threads)
    server, client = start_tuneforge(settings.data_dir, env)
    try:
        stream_once(client, MODEL, QUESTIONS[1], 8, bias)  # loads the base model
        rss_base = rss_mb(server.pid)
        single = min((stream_once(client, MODEL, QUESTIONS[0], args.tokens, bias) for _ in range(2)),
                     key=lambda r: r["seconds"])
        levels = {n: concurrent(client, [MODEL], n, args.tokens, bias) for n in (1, 4, 16)}

        stream_once(client, model_ids[0], QUESTIONS[0], 4, bias)
        rss_one = rss_mb(server.pid)
        for model_id in model_ids[1:]:  # load (and warm) every adapter before the timed phase
            stream_once(client, model_id, QUESTIONS[0], 4, bias)
        rss_loaded = rss_mb(server.pid)
        mixed = concurrent(client, model_ids, 16, args.tokens, bias)
        rss_ten = rss_mb(server.pid)  # as before: includes the batched-LoRA stacks of the 10-adapter mix
    finally:
        server.terminate()
        server.wait(30)

    figures = {
        "baseline_decode_tok_s": base["decode_tok_s"], "baseline_ttft_s": base["ttft_s"],
        "server_decode_tok_s": single["decode_tok_s"], "server_ttft_s": single["ttft_s"],
        "decode_ratio": single["decode_tok_s"] / base["decode_tok_s"],
        "ttft_ratio": single["ttft_s"] / base["ttft_s"],
        **{f"aggregate_tok_s_{n}": r["aggregate_tok_s"] for n, r in levels.items()},
        **{f"mean_ttft_s_{n}": r["mean_ttft_s"] for n, r in levels.items()},
        "concurrency_scaling_4": levels[4]["aggregate_tok_s"] / levels[1]["aggregate_tok_s"],
        "concurrency_scaling_16": levels[16]["aggregate_tok_s"] / levels[1]["aggregate_tok_s"],
        "mixed_10_adapters_tok_s_16": mixed["aggregate_tok_s"],
        "mixed_adapters_vs_base_16": mixed["aggregate_tok_s"] / levels[16]["aggregate_tok_s"],
        "rss_base_only_mb": rss_base, "rss_1_adapter_mb": rss_one, "rss_10_adapters_loaded_mb": rss_loaded,
        "rss_10_adapters_mb": rss_ten,
        "adapter_file_mb": adapter_mb,
        "rss_per_extra_adapter_mb": (rss_ten - rss_one) / 9,
        "adapter_memory_ratio": (rss_ten - rss_one) / 9 / adapter_mb,
    }
    import torch

    print(f"# serve benchmark: {MODEL}, {args.tokens} tokens per stream, greedy, EOS suppressed, "
          f"torch threads {args.threads or torch.get_num_threads()} on {os.cpu_count()} CPUs")
    for name, value in figures.items():
        print(f"{name}: {value:.3f}")
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
