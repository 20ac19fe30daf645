"""Epochs, billed tokens and local training time.

* Epochs follow OpenAI's rule (cookbook): 3 by default, raised or lowered so that
  examples × epochs lands between 100 and 25,000, within 1..25.
* Billed tokens (upstream OpenAI jobs): ``epochs × Σ min(limit, tokens per example)``;
  validation files are not billed.
* Local time: tokens processed per epoch (prompt + answer) ÷ the LoRA training throughput of
  tuneforge's trainer at the base model's size, from ``throughput.json`` beside this module — the
  output of ``benchmarks/estimate_table.py`` (which says how and where it was measured). Between
  points: log-log interpolation; above the largest model throughput scales as 1/params
  (compute-bound); below the smallest, the first segment's slope is extended.
  DPO processes two sequences per example (preferred and non-preferred), so its tokens count twice.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

# (parameters, training tokens/s), written by benchmarks/estimate_table.py
_MEASURED = json.loads((Path(__file__).with_name("throughput.json")).read_text(encoding="utf-8"))
THROUGHPUT_TABLE: list[tuple[float, float]] = [(float(p), float(tps)) for p, tps in _MEASURED["points"]]
THROUGHPUT_SOURCE = (f"measured by benchmarks/estimate_table.py ({_MEASURED['setup']}; {_MEASURED['machine']}; "
                     f"{_MEASURED['measured_at']}): " + ", ".join(f"{p / 1e6:.0f}M≈{tps:.0f}" for p, tps in THROUGHPUT_TABLE)
                     + " tok/s")
KNOWN_PARAMS = {"smollm2-135m": 135e6, "smollm2": 135e6, "gemma-3-270m": 270e6, "gemma3-270m": 270e6}


def default_epochs(n_examples: int) -> int:
    """OpenAI's default ``n_epochs`` for ``n_examples`` training examples."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    n = TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return n


def billed_tokens(lengths: Any, max_tokens: int, epochs: int) -> tuple[int, int]:
    """(tokens per epoch, billed total) with every example capped at ``max_tokens``."""
    per_epoch = int(sum(min(max_tokens, int(n)) for n in lengths))
    return per_epoch, per_epoch * epochs


def parse_params(value: str | float | int | None) -> float | None:
    """``135M``, ``1.5B``, ``270e6``, a model name containing ``135m`` → a parameter count."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    v = value.strip().lower()
    for k, p in KNOWN_PARAMS.items():
        if k in v:
            return p
    m = re.search(r"(\d+(?:\.\d+)?)\s*([kmb])\b", v) or re.search(r"(\d+(?:\.\d+)?)([kmb])(?![a-z])", v)
    if m:
        return float(m.group(1)) * {"k": 1e3, "m": 1e6, "b": 1e9}[m.group(2)]
    try:
        return float(v)
    except ValueError:
        return None


def tokens_per_second(params: float) -> float:
    """Estimated LoRA training throughput on the reference CPU for a model of ``params``."""
    t = THROUGHPUT_TABLE
    if params <= t[0][0]:
        (p0, s0), (p1, s1) = t[0], t[1]
        k = math.log(s1 / s0) / math.log(p1 / p0)
        return s0 * (params / p0) ** k
    if params >= t[-1][0]:
        return t[-1][1] * t[-1][0] / params
    for (p0, s0), (p1, s1) in zip(t, t[1:], strict=False):
        if p0 <= params <= p1:
            f = math.log(params / p0) / math.log(p1 / p0)
            return math.exp(math.log(s0) + f * (math.log(s1) - math.log(s0)))
    raise AssertionError("unreachable")


def estimate(
    *,
    n_examples: int,
    lengths: Any,
    max_tokens: int,
    params: float | None = None,
    epochs: int | None = None,
    method: str = "supervised",
) -> dict[str, Any]:
    """All estimates for a training file, as a JSON-ready dict."""
    n_ep = epochs or default_epochs(n_examples)
    per_epoch, billed = billed_tokens(lengths, max_tokens, n_ep)
    out: dict[str, Any] = {
        "epochs": n_ep,
        "epochs_rule": "OpenAI default: 3, clamped so examples × epochs is within 100..25,000 (1..25 epochs)",
        "tokens_per_epoch": per_epoch,
        "billed_tokens": billed,
        "billing_note": "upstream OpenAI jobs: epochs × Σ min(limit, tokens per example); validation not billed",
    }
    if params:
        tps = tokens_per_second(params)
        processed = per_epoch * n_ep * (2 if method == "dpo" else 1)
        secs = processed / tps
        out["local"] = {
            "params": params,
            "tokens_per_second": round(tps, 1),
            "tokens_processed": processed,
            "seconds": round(secs, 1),
            "human": human_duration(secs),
            "source": THROUGHPUT_SOURCE,
        }
    return out


def human_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {(s % 3600) // 60} min"
    return f"{s // 86400} d {(s % 86400) // 3600} h"
