"""Comparing two models on held-out data: reading the data, pairing the per-item scores of two eval
runs, and a paired bootstrap interval of the mean difference (pure functions; the CLI drives a server)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneforge.errors import InvalidRequest


def heldout_items(path: Path) -> list[dict]:
    """Items ``{"messages": [...prompt], "reference": "..."}`` from a JSONL file of chat examples (the last
    assistant message is the reference answer), or lines that already are items (``{"item": {...}}`` or
    objects with ``messages``/``reference``)."""
    items = []
    with path.open(encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise InvalidRequest(f"{path.name}:{number}: not valid JSON.") from None
            row = row.get("item", row) if isinstance(row, dict) else row
            messages = row.get("messages") if isinstance(row, dict) else None
            if not isinstance(messages, list) or not messages:
                raise InvalidRequest(f"{path.name}:{number}: expected chat 'messages'.")
            reference = row.get("reference")
            if reference is None:
                if messages[-1].get("role") != "assistant":
                    raise InvalidRequest(f"{path.name}:{number}: the last message must be the assistant's "
                                         "answer (the reference), or give 'reference'.")
                reference, messages = str(messages[-1].get("content") or ""), messages[:-1]
            items.append({"messages": [{"role": m["role"], "content": m.get("content") or ""} for m in messages],
                          "reference": reference})
    if not items:
        raise InvalidRequest(f"{path.name}: no items.")
    return items


@dataclass
class Comparison:
    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean of (b - a)
    low: float  # bootstrap 95 % interval of the mean difference
    high: float
    wins_a: int
    wins_b: int
    ties: int

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "B is better (the interval excludes 0)"
        if self.high < 0:
            return "A is better (the interval excludes 0)"
        return "no clear difference (the interval contains 0)"

    def as_dict(self) -> dict:
        return {**self.__dict__, "verdict": self.verdict}


def paired_bootstrap(a: list[float], b: list[float], *, resamples: int = 10_000, seed: int = 0,
                     tie: float = 1e-9) -> Comparison:
    """Percentile bootstrap over items (resampling item indices, keeping each item's pair together)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.size == 0:
        raise ValueError("paired scores must have the same, non-zero length")
    d = y - x
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Comparison(n=int(d.size), mean_a=float(x.mean()), mean_b=float(y.mean()), diff=float(d.mean()),
                      low=float(low), high=float(high), wins_a=int((d < -tie).sum()), wins_b=int((d > tie).sum()),
                      ties=int((np.abs(d) <= tie).sum()))


def item_scores(output_items: list[dict], criteria: list[str]) -> dict[int, float]:
    """Per datasource item: the mean score over the named criteria (errored items score 0)."""
    out = {}
    for item in output_items:
        scores = {r["name"]: float(r["score"]) for r in item.get("results") or []}
        out[int(item["datasource_item_id"])] = float(np.mean([scores.get(c, 0.0) for c in criteria]))
    return out
