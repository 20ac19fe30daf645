"""Batch API benchmark (not a test): 64 chat requests as one ``/v1/batches`` batch vs the same 64 requests
sent one by one, against the same real server (uvicorn on loopback) in this process.

The batch goes through the offline runner, which keeps ``evals_concurrency`` rows in the engine at once,
so continuous batching decodes them together; one-by-one requests decode a single row each. Both sides
send identical requests at temperature 0 with end-of-turn suppressed (``logit_bias``), so every answer is
exactly ``--tokens`` tokens and the work is the same. Prints ``batch_speedup`` (goal >= 3).

    .venv/bin/python benchmarks/batch.py [--requests 64] [--tokens 32] [--model smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

QUESTIONS = ["Tell me a story about a dragon.", "Explain how a bicycle works.", "Describe the ocean.",
             "Write a poem about autumn.", "What do cats like to do?", "How do plants grow?",
             "Explain photosynthesis.", "Describe a busy city street.", "Why is the sky blue?",
             "Tell me about bread.", "What makes a good friend?", "Describe a winter morning.",
             "How does a computer work?", "What is music?", "Describe a walk in the forest.", "Why do we sleep?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--concurrency", type=int, default=None, help="evals_concurrency (default: settings)")
    parser.add_argument("--models-cache", type=Path, default=Path.home() / ".tuneforge" / "models")
    args = parser.parse_args()

    from openai import OpenAI

    from tuneforge.settings import Settings
    from tuneforge.testing import live_server

    overrides = {"evals_concurrency": args.concurrency} if args.concurrency else {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), models_cache_dir=args.models_cache, worker_in_process=False,
                            **overrides)
        with live_server(settings) as server:
            client = OpenAI(base_url=server.base_url, api_key="sk-bench", max_retries=0, timeout=600)
            rt = server.app.state.tuneforge
            info = rt.engine.info(args.model)
            bias = {str(t): -100 for t in info.eos_ids}  # every answer is exactly --tokens long
            bodies = [{"model": args.model, "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]
                                                          + f" ({i})"}],
                       "max_tokens": args.tokens, "temperature": 0, "logit_bias": bias}
                      for i in range(args.requests)]
            client.chat.completions.create(**bodies[0])  # warm-up: weights loaded before timing

            started = time.perf_counter()
            one_by_one = [client.chat.completions.create(**body) for body in bodies]
            sequential_s = time.perf_counter() - started

            lines = "".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                        "body": body}) + "\n" for i, body in enumerate(bodies))
            f = client.files.create(file=("batch.jsonl", io.BytesIO(lines.encode())), purpose="batch")
            started = time.perf_counter()
            batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")
            while batch.status not in ("completed", "failed", "cancelled"):
                time.sleep(0.05)
                batch = client.batches.retrieve(batch.id)
            batch_s = time.perf_counter() - started
            out = [json.loads(x) for x in client.files.content(batch.output_file_id).text.splitlines()]
            stats = rt.engine.stats.snapshot()

    seq_tokens = sum(r.usage.completion_tokens for r in one_by_one)
    batch_tokens = sum(o["response"]["body"]["usage"]["completion_tokens"] for o in out)
    same = sum(o["response"]["body"]["choices"][0]["message"]["content"] == r.choices[0].message.content
               for o, r in zip(out, one_by_one, strict=True))
    print(json.dumps({
        "model": args.model, "requests": args.requests, "tokens_per_answer": args.tokens,
        "evals_concurrency": settings.evals_concurrency,
        "batch_status": batch.status, "request_counts": batch.request_counts.model_dump(),
        "sequential_s": round(sequential_s, 2), "sequential_tokens": seq_tokens,
        "batch_s": round(batch_s, 2), "batch_tokens": batch_tokens,
        "identical_answers": same, "engine_max_batch": stats["max_batch"],
        "engine_mean_batch": round(stats["decode_rows"] / max(1, stats["decode_steps"]), 2),
        "batch_speedup": round(sequential_s / batch_s, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
