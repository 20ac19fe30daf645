"""Summaries the data check reports: distributions, a histogram and common prefixes."""

from __future__ import annotations

import numpy as np


def common_prefix(a: str | None, b: str) -> str:
    """The common prefix of ``a`` and ``b`` (``a`` None: nothing seen yet, so ``b``)."""
    if a is None:
        return b
    if b.startswith(a):  # the usual case once the prefix has settled (often to "")
        return a
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return a[:i]


def distribution(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {}
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return {"min": int(values.min()), "max": int(values.max()), "mean": round(float(values.mean()), 1),
            "median": float(p50), "p5": round(float(p5), 1), "p95": round(float(p95), 1), "total": int(values.sum())}


def histogram(values: np.ndarray, bins: int = 12) -> dict[str, list[int]]:
    """Example lengths in equal-width integer bins (``edges`` has one more entry than ``counts``)."""
    lo, hi = int(values.min()), int(values.max())
    width = max(1, -(-(hi - lo + 1) // bins))
    edges = list(range(lo, hi + width + 1, width))
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": edges, "counts": [int(c) for c in counts]}
