"""Regenerate the training-time estimate's throughput table: ``src/tuneforge/data/throughput.json``.

``tuneforge data check`` and ``POST /v1/files/{id}/check`` estimate local training time as tokens per
epoch ÷ LoRA training throughput at the base model's size. The throughput points come from this
script: tuneforge's own trainer (LoRA r16 all-linear, batch 8, the same varied chats as
train_throughput.py), one epoch on models of several sizes, on the machine it runs on.

    python benchmarks/estimate_table.py              # 96 chats on SmolLM2-135M, 4x that on the random 5M/30M
    python benchmarks/estimate_table.py --chats 48   # quicker, noisier

The figure is the training loop's throughput (set-up excluded); small models get more chats so that
the first steps' warm-up does not dominate.

Run it on an idle machine of the kind users train on, and commit the JSON it writes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import make_chats, model_30m, run_tuneforge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "tuneforge" / "data" / "throughput.json"


def model_5m(folder: Path) -> str:
    from tuneforge.models_zoo.tiny import build_tiny_model

    if not (folder / "config.json").exists():
        corpus = [m["content"] for c in make_chats(200) for m in c["messages"]]
        build_tiny_model(folder, hidden_size=256, layers=4, heads=4, vocab_size=4096, corpus=corpus)
    return str(folder)


def n_params(path: str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    with __import__("torch").device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=96)
    parser.add_argument("--models", default="random-5m,random-30m,smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import torch

    from tuneforge.settings import Settings
    from tuneforge.training.flops import cpu_count

    torch.set_num_threads(cpu_count())
    settings = Settings()
    cache = settings.data_dir / "cache"
    points = []
    for name in args.models.split(","):
        chats = make_chats(args.chats * (4 if name.startswith("random-") else 1))
        if name == "random-5m":
            path = model_5m(settings.models_dir / "bench-random-5m")
        elif name == "random-30m":
            path = model_30m(settings.models_dir / "bench-random-30m")
        else:
            from tuneforge.db.session import Database
            from tuneforge.models.registry import ModelRegistry

            db = Database(settings.resolved_database_url)
            db.migrate()
            path = ModelRegistry(settings, db).materialize(name)
        result = run_tuneforge(path, chats, cache)
        params = n_params(path)
        tps = result["loop_tokens_per_second"]  # steady state: a job's set-up is seconds, its loop is the rest
        points.append([params, round(tps, 1)])
        print(f"{name}: {params / 1e6:.1f}M params, {tps:.1f} tok/s in the training loop "
              f"({result['tokens_per_second']:.1f} tok/s including set-up)", flush=True)
    points.sort()
    table = {
        "points": points,
        "setup": f"tuneforge trainer, LoRA r16 all-linear, batch 8, {args.chats} varied chats (4x on random "
                 f"models), 1 epoch, "
                 f"{torch.get_num_threads()} threads",
        "machine": f"{platform.processor() or platform.machine()}, {cpu_count()} cores",
        "torch": torch.__version__,
        "measured_at": time.strftime("%Y-%m-%d"),
        # a busy machine understates throughput: the 1-minute load average when the run ended
        "load_average": round(os.getloadavg()[0], 2),
        "command": "python benchmarks/estimate_table.py " + " ".join(sys.argv[1:]),
    }
    args.out.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
