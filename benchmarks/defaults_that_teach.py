"""Do the default hyperparameters teach a small data set its style? (issue #12, item 6; not a test)

Trains the bundled SmolLM2-135M-Instruct through tuneforge's own job path (a real server on loopback,
the official ``openai`` SDK: upload, ``fine_tuning.jobs.create``, the in-process worker) with the
hyperparameters given (omitted = ``auto``, what a user gets), then asks the base model and the
fine-tune every held-out question and prints how often the answer shows the style:

* at temperature 0 (one greedy answer per question), and
* at the chat default temperature (the request omits ``temperature``, as ``tuneforge chat`` does; the
  server then samples at 1.0) — ``--samples`` seeded answers per question.

Data sets (held-out items are ``{"messages", "reference"}``; an answer passes when it contains the
reference, case-sensitively — the same check as ``tuneforge eval compare ... --grader contains``):

* ``support``: benchmarks/data/support_style_{train,heldout}.jsonl — 96 answers in one template with the
  sign-off "— The Lumen Support Team"; 24 questions about products never seen in training.
* ``ember``: examples/ember_chats.jsonl (the README's 94 chats) and examples/ember_heldout.jsonl —
  20 unseen questions whose persona answer names "Ember".

    python benchmarks/defaults_that_teach.py --data support                 # auto hyperparameters
    python benchmarks/defaults_that_teach.py --data support --epochs 3 --batch-size 8
    python benchmarks/defaults_that_teach.py --data ember --skip-base --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
DATA = {
    "support": (ROOT / "benchmarks/data/support_style_train.jsonl", ROOT / "benchmarks/data/support_style_heldout.jsonl",
                160),
    "ember": (ROOT / "examples/ember_chats.jsonl", ROOT / "examples/ember_heldout.jsonl", 64),
}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def train(client, train_path: Path, hp: dict, seed: int) -> tuple[str, dict]:
    with train_path.open("rb") as fh:
        file_id = client.files.create(file=(train_path.name, fh), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=file_id, seed=seed, suffix="teach",
                                         method={"type": "supervised", "supervised": {"hyperparameters": hp}})
    started = time.time()
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(2)
        job = client.fine_tuning.jobs.retrieve(job.id)
    if job.status != "succeeded":
        sys.exit(f"job {job.id} {job.status}: {job.error}")
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=1000))
    losses = [e.data["train_loss"] for e in events if e.type == "metrics" and e.data and "train_loss" in e.data]
    steps = [e.data["step"] for e in events if e.type == "metrics" and e.data and "step" in e.data]
    info = {"job": job.id, "hyperparameters": job.method.supervised.hyperparameters.model_dump(),
            "steps": max(steps) if steps else None, "last_train_loss": losses[0] if losses else None,
            "train_seconds": round(time.time() - started)}
    return job.fine_tuned_model, info


def answer(client, model: str, item: dict, max_tokens: int, temperature: float | None, seed: int) -> str:
    params = {"max_tokens": max_tokens, "seed": seed}
    if temperature is not None:
        params["temperature"] = temperature
    out = client.chat.completions.create(model=model, messages=item["messages"], **params)
    return out.choices[0].message.content or ""


def score(client, model: str, items: list[dict], max_tokens: int, samples: int) -> dict:
    """Pass rates at T=0 and at the default temperature, and one greedy answer to show."""
    jobs = [(i, None if t else 0.0, s) for t, n in ((0, 1), (1, samples)) for i in range(len(items)) for s in range(n)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda j: answer(client, model, items[j[0]], max_tokens, j[1], j[2]), jobs))
    passed = {0: [], 1: []}
    for (i, temperature, _), text in zip(jobs, answers, strict=True):
        passed[0 if temperature == 0.0 else 1].append(items[i]["reference"] in text)
    greedy = answers[:len(items)]
    return {"t0": sum(passed[0]) / len(passed[0]), "t0_passed": f"{sum(passed[0])}/{len(passed[0])}",
            "tdefault": sum(passed[1]) / len(passed[1]), "tdefault_passed": f"{sum(passed[1])}/{len(passed[1])}",
            "example": {"question": items[0]["messages"][-1]["content"], "answer": greedy[0]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=sorted(DATA), default="support")
    parser.add_argument("--epochs", type=int, help="n_epochs (default auto)")
    parser.add_argument("--batch-size", type=int, help="batch_size (default auto)")
    parser.add_argument("--lr-multiplier", type=float, help="learning_rate_multiplier (default auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=3, help="answers per question at the default temperature")
    parser.add_argument("--skip-base", action="store_true", help="score only the fine-tune")
    parser.add_argument("--threads", type=int, help="torch threads for training (default: all cores)")
    parser.add_argument("--models-cache", type=Path, default=Path(tempfile.gettempdir()) / "tuneforge-bench-models",
                        help="converted base weights, kept between runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--base-url", help="score on this running server (e.g. http://127.0.0.1:8000/v1) instead "
                        "of starting one; with --fine-tuned, nothing is trained")
    parser.add_argument("--api-key", default=os.environ.get("TUNEFORGE_API_KEY", "x"))
    parser.add_argument("--fine-tuned", help="an existing ft: model to score instead of training one")
    args = parser.parse_args()

    import openai

    from tuneforge.settings import Settings
    from tuneforge.testing import live_server

    train_path, heldout_path, max_tokens = DATA[args.data]
    items = read_jsonl(heldout_path)
    hp = {k: v for k, v in (("n_epochs", args.epochs), ("batch_size", args.batch_size),
                            ("learning_rate_multiplier", args.lr_multiplier)) if v is not None}
    result: dict = {"data": args.data, "requested": hp or "auto", "n_heldout": len(items), "samples": args.samples}

    def run(base_url: str) -> None:
        client = openai.OpenAI(base_url=base_url, api_key=args.api_key, max_retries=0, timeout=3600)  # a loaded CPU is slow
        if not args.skip_base:
            result["base"] = score(client, MODEL, items, max_tokens, args.samples)
            print(f"base   T=0 {result['base']['t0_passed']}  T=default {result['base']['tdefault_passed']}",
                  flush=True)
        if args.fine_tuned:
            model = result["model"] = args.fine_tuned
        else:
            model, result["training"] = train(client, train_path, hp, args.seed)
            print(f"trained {model}: {result['training']}", flush=True)
        result["fine_tune"] = score(client, model, items, max_tokens, args.samples)

    if args.base_url:
        run(args.base_url)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp) / "data", models_cache_dir=args.models_cache, worker_poll_s=0.2,
                                train_threads=args.threads)
            with live_server(settings) as server:
                run(server.base_url)
    ft = result["fine_tune"]
    print(f"fine-tune T=0 {ft['t0_passed']} ({ft['t0']:.0%})  T=default {ft['tdefault_passed']} "
          f"({ft['tdefault']:.0%})")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
