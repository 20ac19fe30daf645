"""Checking a large JSONL file on several cores.

The file is cut into slices at line starts; forked worker processes each run an ordinary
:class:`~tuneforge.data.validate.Checker` over their slice (parsing, per-example checks, token
counts) and send back its compact state (a few integers per example, the issues, the language
counts); the parent merges the slices in file order and runs the dataset-level checks once. The
report equals the sequential one (tested). Memory stays flat: no process holds examples.

Only used where forking is safe and pays off: a single-threaded process (the CLI, a benchmark; not
the server, whose other threads could hold locks across the fork), a UTF-8 JSONL file of at least
``MIN_PARALLEL_BYTES``, and tiktoken counting or none (Hugging Face tokenizers warn after a fork).
Workers inherit the parent's string-hash seed through fork, so duplicate hashes agree across slices.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Any

from .encoding import SNIFF_BYTES, sniff_bytes
from .issues import Report
from .readers import iter_jsonl
from .tokens import OpenAICounter, TokenCounter
from .validate import Checker, example_kind

MIN_PARALLEL_BYTES = 8 << 20
_JOB: dict[str, Any] | None = None  # what forked workers read (set just before the pool forks)


def default_workers(path: str, counter: TokenCounter | None) -> int:
    """How many processes :func:`check_jsonl_parallel` should use here (1 = check sequentially)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() > 1 or not (counter is None or isinstance(counter, OpenAICounter)):
        return 1
    try:
        if os.path.getsize(path) < MIN_PARALLEL_BYTES:
            return 1
        with open(path, "rb") as f:
            if sniff_bytes(f.read(SNIFF_BYTES)) not in ("utf-8", "utf-8-sig", "ascii"):
                return 1  # slices are cut at b"\n", which is only a line end in UTF-8/ASCII
    except OSError:
        return 1
    return min(cores, 8)


def slices(path: str, parts: int) -> list[tuple[int, int, int]]:
    """(start byte, end byte, first line number) of ``parts`` slices cut at line starts."""
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as f:
        for k in range(1, parts):
            f.seek(size * k // parts)
            f.readline()  # to the start of the next line
            pos = f.tell()
            if bounds[-1] < pos < size:
                bounds.append(pos)
        bounds.append(size)
        first_lines, line, pos = [1], 1, 0
        f.seek(0)
        for bound in bounds[1:-1]:
            while pos < bound:
                block = f.read(min(bound - pos, 1 << 24))
                line += block.count(b"\n")
                pos += len(block)
            first_lines.append(line)
    return [(bounds[i], bounds[i + 1], first_lines[i]) for i in range(len(bounds) - 1)]


def _first_method(path: str) -> str:
    """What ``method="auto"`` resolves to: the kind of the file's first parsed record (as Checker.feed)."""
    for rec in iter_jsonl(path):
        if rec.ok:
            return "dpo" if isinstance(rec.data, dict) and example_kind(rec.data) == "dpo" else "supervised"
    return "supervised"


def _check_slice(bounds: tuple[int, int, int]) -> dict[str, Any]:
    job = _JOB
    assert job is not None, "worker started without a job"
    counter = job["counter"]
    if isinstance(counter, OpenAICounter):  # a fresh one: no thread pool inherited from the parent
        counter = OpenAICounter(counter.encoding, threads=1)
    checker = Checker(job["path"], counter=counter, **job["options"])
    start, end, first_line = bounds
    for rec in iter_jsonl(job["path"], start=start, end=end, first_line=first_line):
        checker.feed(rec)
    return checker.export()


def check_jsonl_parallel(path: str, counter: TokenCounter | None, workers: int, **options: Any) -> Report:
    """The report of ``Checker(path, counter=counter, **options)`` fed every line, computed on
    ``workers`` processes (see the module notes for when that is safe)."""
    global _JOB
    if options.get("method") == "auto":
        options["method"] = _first_method(path)
    parts = slices(path, workers * 2)  # a few more slices than workers: a slow slice holds up less
    _JOB = {"path": path, "counter": counter, "options": options}
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            states = pool.map(_check_slice, parts, chunksize=1)
    finally:
        _JOB = None
    checker = Checker(path, counter=counter, **options)
    for state in states:
        checker.merge(state)
    return checker.finish()
