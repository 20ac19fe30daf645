"""LoRA training throughput: tuneforge's trainer vs a plain TRL ``SFTTrainer`` with TRL's defaults.

Same model, same data (chats of widely varying length), same LoRA config (r16, alpha 32, all
linear layers, no dropout), same effective batch (8), one epoch, in the same process. Prints the
trained tokens/s of each (non-padding tokens processed per second of training), ``train_speedup``
and MFU (model FLOPs / measured peak matmul FLOP/s of this machine, see training/flops.py).

    python benchmarks/train_throughput.py            # 300 chats, SmolLM2-135M and a 30M random model
    python benchmarks/train_throughput.py --quick    # 48 chats (6 steps) per trainer
    python benchmarks/train_throughput.py --quick --precision fp32   # tuneforge without bf16 autocast

tuneforge's trainer uses bf16 autocast on CPUs with AVX512-BF16/AMX (``--precision auto``, the
default; see training/precision.py); its MFU is then against the measured bf16 matmul peak. TRL runs
with its defaults — TRL 1.16's ``SFTConfig`` defaults to ``bf16=True``, bf16 autocast on CPU too — except
on CPUs without native bf16 (no AVX512-BF16/AMX), where that autocast is emulated (a 2048² bf16 matmul
took 56 s vs 0.24 s in fp32 on an AVX2 EPYC; a full TRL run projected at ≈ 3.5 h) and the benchmark
passes ``bf16=False``, as any user there would. The TRL line says which precision it ran. ``--compare-precision`` also runs tuneforge in fp32 and prints
``bf16_vs_fp32``.

Notes on fairness: TRL's defaults turn gradient checkpointing on and train on every token
(assistant-only loss needs ``{% generation %}`` markers SmolLM2's template lacks); tuneforge trains
on assistant tokens only, as a chat fine-tune should, and skips the LM head elsewhere — that saving
is part of what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
BATCH = 8


def make_chats(n: int, seed: int = 0) -> list[dict]:
    """Chats from the example persona, stretched to widely varying lengths (1 to 6 turns)."""
    base = [json.loads(x) for x in (ROOT / "examples" / "ember_chats.jsonl").read_text(encoding="utf-8").splitlines()]
    pairs = [(r["messages"][-2]["content"], r["messages"][-1]["content"]) for r in base]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        turns = rng.choice([1, 1, 1, 2, 3, 6])
        msgs = []
        for _ in range(turns):
            q, a = rng.choice(pairs)
            if rng.random() < 0.25:
                a = " ".join([a] * rng.randint(2, 5))  # a long answer now and then
            msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        out.append({"messages": msgs})
    return out


def model_30m(folder: Path) -> str:
    from tuneforge.models_zoo.tiny import build_tiny_model

    if not (folder / "config.json").exists():
        corpus = [m["content"] for c in make_chats(200) for m in c["messages"]]
        build_tiny_model(folder, hidden_size=512, layers=11, heads=8, vocab_size=8192, corpus=corpus)
    return str(folder)


def lora_config(dropout: float = 0.0):
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=dropout, target_modules="all-linear", bias="none",
                      task_type="CAUSAL_LM")


def run_tuneforge(model_path: str, chats: list[dict], cache: Path, precision: str = "auto") -> dict:
    import torch

    from tuneforge.training.config import TrainingConfig
    from tuneforge.training.data import ChatFormat
    from tuneforge.training.trainer import Trainer, load_model

    class Quiet:
        def event(self, *a, **k): pass
        def metrics(self, *a, **k): pass
        def checkpoint(self, *a, **k): pass
        def stop_requested(self): return False

    cfg = TrainingConfig(job_id="bench", method="supervised", base_model="bench", model_path=model_path,
                         parent_adapter=None, seed=0, n_epochs=1, batch_size=BATCH, learning_rate_multiplier=1,
                         learning_rate=2e-4, beta=None, max_seq_len=2048, n_train_examples=len(chats),
                         n_valid_examples=0, precision=precision)
    model, tok = load_model(cfg, model_path)
    fmt = ChatFormat.probe(tok)
    cfg.chat_template = fmt.template
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, model, fmt, chats, [], Quiet(), Path(out), cache_dir=cache)
        started = time.perf_counter()
        result = trainer.run()
        seconds = time.perf_counter() - started
    del model
    torch.set_flush_denormal(False)  # leave TRL its own defaults
    return {"tokens": result.trained_tokens, "seconds": seconds, "mfu": result.stats.get("mfu"),
            "tokens_per_second": result.trained_tokens / seconds, "precision": result.stats.get("precision"),
            # the training loop alone (no model set-up or tokenizing): what a long job runs at
            "loop_tokens_per_second": result.stats.get("tokens_per_second")}


def run_trl(model_path: str, chats: list[dict], cache: Path) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tuneforge.training.flops import FlopCounter, peak_flops
    from tuneforge.training.precision import cpu_has_bf16

    # TRL's default bf16 autocast is emulated (hundreds of times slower) on CPUs without native bf16
    native_bf16 = cpu_has_bf16()
    precision = {} if native_bf16 else {"bf16": False}
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, per_device_train_batch_size=BATCH, num_train_epochs=1, learning_rate=2e-4,
                         report_to=[], save_strategy="no", logging_steps=1000, seed=0, use_cpu=True,
                         dataloader_num_workers=0, **precision)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(chats),
                             processing_class=tok, peft_config=lora_config())
        tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
        sum_sq = sum(len(x) ** 2 for x in trainer.train_dataset["input_ids"])
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        counter = FlopCounter(trainer.model)
        flops = counter.add_step(tokens, sum_sq, tokens)  # TRL trains on every token
    peak = peak_flops(cache, "float32")
    return {"tokens": tokens, "seconds": seconds, "mfu": flops / seconds / peak, "tokens_per_second": tokens / seconds,
            "gradient_checkpointing": args.gradient_checkpointing,
            "precision": "bf16" if args.bf16 else "fp32" if native_bf16 else "fp32 (bf16=False: no native bf16 here)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="48 chats per trainer instead of 300")
    parser.add_argument("--models", default="smollm2-135m-instruct,random-30m")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--compare-precision", action="store_true", help="also run tuneforge in fp32")
    args = parser.parse_args()

    import torch

    from tuneforge.settings import Settings
    from tuneforge.training.flops import cpu_count

    torch.set_num_threads(cpu_count())
    settings = Settings()
    cache = settings.data_dir / "cache"
    from tuneforge.training.flops import peak_flops
    from tuneforge.training.precision import peak_dtype, resolve_precision

    peak = peak_flops(cache, "float32", remeasure=True)
    precision = resolve_precision(args.precision)
    peak_ours = peak_flops(cache, peak_dtype(precision), remeasure=True) if precision != "fp32" else peak
    chats = make_chats(48 if args.quick else 300)
    print(f"# {len(chats)} chats, batch {BATCH}, LoRA r16 all-linear, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, measured fp32 matmul peak {peak / 1e9:.0f} GFLOP/s, tuneforge precision "
          f"{precision} (peak {peak_ours / 1e9:.0f} GFLOP/s)", flush=True)
    for name in args.models.split(","):
        if name == "random-30m":
            path = model_30m(settings.models_dir / "bench-random-30m")
        else:
            from tuneforge.db.session import Database
            from tuneforge.models.registry import ModelRegistry

            db = Database(settings.resolved_database_url)
            db.migrate()
            path = ModelRegistry(settings, db).materialize(name)
        ours = run_tuneforge(path, chats, cache, precision)
        print(f"{name} tuneforge ({ours['precision']}): {ours['tokens_per_second']:.1f} tok/s ({ours['tokens']} "
              f"tokens in {ours['seconds']:.1f} s), MFU {ours['mfu'] * 100:.1f}%", flush=True)
        if args.compare_precision and precision != "fp32":
            fp32 = run_tuneforge(path, chats, cache, "fp32")
            print(f"{name} tuneforge (fp32): {fp32['tokens_per_second']:.1f} tok/s, MFU {fp32['mfu'] * 100:.1f}%",
                  flush=True)
            print(f"{name} bf16_vs_fp32: {ours['tokens_per_second'] / fp32['tokens_per_second']:.2f}", flush=True)
        trl = run_trl(path, chats, cache)
        print(f"{name} trl_defaults: {trl['tokens_per_second']:.1f} tok/s ({trl['tokens']} tokens in "
              f"{trl['seconds']:.1f} s), MFU {trl['mfu'] * 100:.1f}%, gradient_checkpointing="
              f"{trl['gradient_checkpointing']}, precision {trl['precision']}", flush=True)
        print(f"{name} train_speedup: {ours['tokens_per_second'] / trl['tokens_per_second']:.2f}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
