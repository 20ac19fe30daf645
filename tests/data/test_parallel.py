"""The multi-process data check (data/parallel.py) gives exactly the sequential report."""

from __future__ import annotations

import json
import random

import pytest

from tuneforge.data import check_file
from tuneforge.data.parallel import MIN_PARALLEL_BYTES, default_workers, slices


def _write(path, n: int, seed: int = 0) -> None:
    """Chats with repeated system prompts and, scattered over the whole file, every kind of problem
    the dataset-level merge must get right: duplicates far apart, bad JSON, blank lines, errors,
    an over-long example, special tokens and a second language."""
    rnd = random.Random(seed)
    words = "the model learns answers data training tokens files memory chat 数据 训练 模型".split()
    lines = []
    for i in range(n):
        msgs = [{"role": "system", "content": rnd.choice(["You are helpful.", "Be brief.", "你是助手。"])},
                {"role": "user", "content": f"Q{i}: " + " ".join(rnd.choices(words, k=rnd.randint(3, 20)))},
                {"role": "assistant", "content": " ".join(rnd.choices(words, k=rnd.randint(3, 40)))}]
        if i % 97 == 5:
            msgs[1]["content"] = "the same question again"  # exact duplicates, far apart in the file
            msgs[2]["content"] = "the same answer"
        if i % 211 == 7:
            msgs[2]["content"] = "contains <|endoftext|> inside"
        if i % 331 == 9:
            msgs.append({"role": "wizard", "content": "?"})
        if i == n // 2:
            msgs[2]["content"] = "word " * 400
        lines.append(json.dumps({"messages": msgs}, ensure_ascii=False))
        if i % 157 == 3:
            lines.append('{"messages": [broken')
        if i % 173 == 4:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("tokenizer", ["cl100k_base", None])
@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_report_equals_sequential(tmp_path, tokenizer, workers):
    path = tmp_path / "chats.jsonl"
    _write(path, 3000)
    kw = dict(tokenizer=tokenizer, max_tokens=300, per_example=True)
    sequential = check_file(path, workers=1, **kw).to_dict()
    parallel = check_file(path, workers=workers, **kw).to_dict()
    assert parallel == sequential
    codes = {i["code"] for i in sequential["issues"]}
    assert {"invalid_json", "duplicate_example", "unrecognized_role"} <= codes  # the merge had work to do
    if tokenizer:
        assert "too_many_tokens" in codes and sequential["stats"]["tokens"]["total"] > 0


def test_auto_method_and_slices_cover_every_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    rows = [{"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
             "preferred_output": [{"role": "assistant", "content": f"good {i}"}],
             "non_preferred_output": [{"role": "assistant", "content": f"bad {i}"}]} for i in range(400)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    parts = slices(str(path), 4)
    assert parts[0][:1] == (0,) and parts[-1][1] == path.stat().st_size
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
    assert [p[2] for p in parts] == sorted({p[2] for p in parts})  # increasing first-line numbers
    seq = check_file(path, method="auto", workers=1).to_dict()
    par = check_file(path, method="auto", workers=2).to_dict()
    assert par == seq and par["method"] == "dpo"


def test_default_workers_stays_sequential_when_unsafe_or_small(tmp_path):
    import threading

    small = tmp_path / "small.jsonl"
    small.write_text('{"messages": []}\n')
    assert default_workers(str(small), None) == 1  # below MIN_PARALLEL_BYTES
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"messages": []}\n' * (MIN_PARALLEL_BYTES // 16))
    event = threading.Event()
    thread = threading.Thread(target=event.wait)
    thread.start()
    try:
        assert default_workers(str(big), None) == 1  # other threads: forking is not safe
    finally:
        event.set()
        thread.join()
