"""Fixes: strip, dedupe, drop or truncate over-long examples, drop broken lines, shuffle + split.

The input file is never modified. Every output is written atomically: a temporary file in the
output's folder, then ``os.replace``. Examples stream through; a shuffle/split keeps only byte
offsets in memory (8 bytes per example), not the examples.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .tokens import TokenCounter
from .validate import _texts, check_example, counting_view

MAX_LISTED = 1000
_WS = re.compile(r"\s+")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], *, protect: Iterable[str | os.PathLike[str]] = ()) -> Iterator[IO[str]]:
    """Write ``path`` atomically (temp file in the same folder + ``os.replace``). Refuses to
    overwrite any of ``protect`` (the input files)."""
    target = Path(path).resolve()
    for p in protect:
        if Path(p).resolve() == target:
            raise ValueError(f"refusing to overwrite the input file {p}; choose another output path")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dumps(ex: Any) -> str:
    return json.dumps(ex, ensure_ascii=False, separators=(",", ":"))


@dataclass
class FixOptions:
    strip: bool = True
    dedupe: bool = True
    long: str = "keep"                # keep | drop | truncate (needs a counter + max_tokens)
    max_tokens: int | None = None
    counter: TokenCounter | None = None
    drop_invalid: bool = True         # drop examples with check errors (each listed)
    shuffle: bool = False
    split: float | int | None = None  # validation fraction (0..1) or size (>= 1)
    seed: int = 42
    method: str = "supervised"


@dataclass
class FixResult:
    input: str
    outputs: dict[str, str] = field(default_factory=dict)
    read: int = 0
    written: int = 0
    train: int | None = None
    valid: int | None = None
    stripped: int = 0
    truncated: int = 0
    dropped: list[tuple[int, str]] = field(default_factory=list)
    dropped_count: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    shape: str | None = None      # convert: the input shape used
    detected: str | None = None   # convert: what auto-detection said

    def drop(self, line: int, reason: str, code: str) -> None:
        self.dropped_count += 1
        self.reasons[code] += 1
        if len(self.dropped) < MAX_LISTED:
            self.dropped.append((line, reason))

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "shape": self.shape, "detected": self.detected, "outputs": self.outputs, "read": self.read, "written": self.written,
                "train": self.train, "valid": self.valid, "stripped": self.stripped, "truncated": self.truncated,
                "dropped": self.dropped_count, "dropped_by_reason": dict(self.reasons),
                "dropped_lines": [{"line": ln, "reason": r} for ln, r in self.dropped]}


def _strip_example(ex: dict[str, Any]) -> bool:
    changed = False
    lists = [ex.get("messages")] if "messages" in ex else [
        (ex.get("input") or {}).get("messages"), ex.get("preferred_output"), ex.get("non_preferred_output")]
    for msgs in lists:
        for m in msgs or []:
            if not isinstance(m, dict):
                continue
            c = m.get("content")
            if isinstance(c, str) and c != c.strip():
                m["content"] = c.strip()
                changed = True
            elif isinstance(c, list):
                for p in c:
                    if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"] != p["text"].strip():
                        p["text"] = p["text"].strip()
                        changed = True
    return changed


class Fixer:
    """Feed ``(line, example_or_None, error)``; examples that survive are written to ``out``."""

    def __init__(self, opts: FixOptions, result: FixResult, out: IO[str]):
        if opts.long not in ("keep", "drop", "truncate"):
            raise ValueError("long must be keep, drop or truncate")
        if opts.long != "keep" and (opts.counter is None or not (opts.max_tokens or opts.counter.default_max_tokens)):
            raise ValueError("dropping or truncating long examples needs a tokenizer")
        self.o, self.r, self.out = opts, result, out
        self.limit = opts.max_tokens or (opts.counter.default_max_tokens if opts.counter else None)
        self.seen: set[int] = set()
        self.offsets = array("q")
        self.pos = 0
        self.batch: list[tuple[int, dict[str, Any]]] = []

    def feed(self, line: int, ex: Any, error: str | None = None) -> None:
        self.r.read += 1
        if error is not None:
            self.r.drop(line, error, "invalid_json" if error.startswith("invalid JSON") else "unconvertible")
            return
        if self.o.strip and isinstance(ex, dict) and _strip_example(ex):
            self.r.stripped += 1
        if self.o.drop_invalid:
            errs = [(c, m) for c, m in check_example(ex, self.o.method) if _is_error(c)]
            if errs:
                self.r.drop(line, "; ".join(f"{c}: {m}" for c, m in errs[:3]), errs[0][0])
                return
        if self.o.dedupe:
            key = hash(tuple((ro, _WS.sub(" ", t).strip()) for ro, t in _texts(ex)))
            if key in self.seen:
                self.r.drop(line, "duplicate of an earlier example", "duplicate_example")
                return
            self.seen.add(key)
        if self.o.long == "keep":
            self._write(ex)
        else:
            self.batch.append((line, ex))
            if len(self.batch) >= 256:
                self._flush()

    def _flush(self) -> None:
        if not self.batch:
            return
        assert self.o.counter is not None and self.limit
        counts = self.o.counter.count_batch([counting_view(ex) for _, ex in self.batch])
        for (line, ex), c in zip(self.batch, counts, strict=True):
            if c.error:
                self.r.drop(line, f"chat template error: {c.error[:200]}", "chat_template_error")
            elif c.total <= self.limit:
                self._write(ex)
            elif self.o.long == "truncate" and "messages" in ex:
                cut = self._truncate(ex)
                if cut is None:
                    self.r.drop(line, f"{c.total} tokens > {self.limit} and no shorter prefix ends with an answer", "too_many_tokens")
                else:
                    self.r.truncated += 1
                    self._write(cut)
            else:
                self.r.drop(line, f"{c.total} tokens > {self.limit}", "too_many_tokens")
        self.batch.clear()

    def _truncate(self, ex: dict[str, Any]) -> dict[str, Any] | None:
        """Drop trailing turns until the example fits and still ends with a trained answer."""
        msgs = ex["messages"]
        assert self.o.counter is not None and self.limit
        for end in range(len(msgs) - 1, 0, -1):
            m = msgs[end - 1]
            if not (isinstance(m, dict) and m.get("role") == "assistant" and m.get("weight", 1) != 0):
                continue
            cand = dict(ex, messages=msgs[:end])
            c = self.o.counter.count_batch([cand])[0]
            if not c.error and c.total <= self.limit:
                return cand
        return None

    def _write(self, ex: Any) -> None:
        s = dumps(ex) + "\n"
        self.offsets.append(self.pos)
        self.pos += len(s.encode("utf-8"))
        self.out.write(s)
        self.r.written += 1

    def close(self) -> None:
        self._flush()


def _is_error(code: str) -> bool:
    from .issues import CODES

    return CODES[code][0] == "error"


def split_outputs(output: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(output)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(f"{stem}.train.jsonl"), p.with_name(f"{stem}.valid.jsonl")


def finish_outputs(tmp: Path, fixer: Fixer, opts: FixOptions, output: Path, result: FixResult, protect: list[str]) -> None:
    """Move the streamed temp file into place, shuffling/splitting by byte offsets if asked."""
    n = len(fixer.offsets)
    if not opts.shuffle and not opts.split:
        for p in protect:
            if Path(p).resolve() == output.resolve():
                raise ValueError(f"refusing to overwrite the input file {p}")
        os.replace(tmp, output)
        result.outputs["output"] = str(output)
        return
    order = list(range(n))
    random.Random(opts.seed).shuffle(order)
    n_val = 0
    if opts.split:
        n_val = int(opts.split) if opts.split >= 1 else round(n * float(opts.split))
        n_val = min(max(n_val, 1 if n >= 2 else 0), n - 1 if n >= 2 else 0)
    offs = fixer.offsets
    with open(tmp, "rb") as src:
        def lines(idx: list[int]) -> Iterator[str]:
            for i in idx:
                src.seek(offs[i])
                yield src.readline().decode("utf-8")

        if opts.split:
            train_p, valid_p = split_outputs(output)
            val_idx, train_idx = order[:n_val], order[n_val:]
            if not opts.shuffle:  # random validation subset, both files keep the input order
                val_idx, train_idx = sorted(val_idx), sorted(train_idx)
            for path, idx, key in ((train_p, train_idx, "train"), (valid_p, val_idx, "valid")):
                with atomic_writer(path, protect=protect) as f:
                    for s in lines(idx):
                        f.write(s)
                result.outputs[key] = str(path)
            result.train, result.valid = len(train_idx), len(val_idx)
        else:
            with atomic_writer(output, protect=protect) as f:
                for s in lines(order):
                    f.write(s)
            result.outputs["output"] = str(output)
    os.unlink(tmp)


def run_fix(items: Iterable[tuple[int, Any, str | None]], output: str | os.PathLike[str], opts: FixOptions, *,
            input_path: str, protect: list[str]) -> FixResult:
    """Stream ``(line, example, error)`` items through the fixes into ``output``."""
    out = Path(output)
    for p in protect:
        if Path(p).resolve() in (out.resolve(), *(q.resolve() for q in split_outputs(out))):
            raise ValueError(f"refusing to overwrite the input file {p}; choose another output path")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = FixResult(input=input_path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            fixer = Fixer(opts, result, f)
            for line, ex, err in items:
                fixer.feed(line, ex, err)
            fixer.close()
        finish_outputs(tmp, fixer, opts, out, result, protect)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return result
