"""A 200k-line file is checked with flat memory (the check runs in a child process whose own peak
RSS is measured). A control child that loads every example, as the cookbook script does, must
exceed the same bound, which shows the bound can fail."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

N_LINES = 200_000
BOUND_MB = 200

# VmHWM (peak RSS of this process image); ru_maxrss would include the forking parent's size
_PEAK = ("print('PEAK_KB', next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')))")


def _child(code: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + "\n" + _PEAK], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    kb = int(out.rsplit("PEAK_KB", 1)[1].split()[0])
    return kb // 1024, out


def _generate(path, n):
    rnd = random.Random(0)
    words = "data model token train adapter answer question local file check memory line chat system user".split()
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            q = " ".join(rnd.choices(words, k=rnd.randint(8, 30)))
            a = " ".join(rnd.choices(words, k=rnd.randint(20, 60)))
            f.write(json.dumps({"messages": [{"role": "system", "content": "You are a helpful assistant."},
                                             {"role": "user", "content": f"{i}: {q}"},
                                             {"role": "assistant", "content": a}]}) + "\n")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_200k_lines_checked_with_flat_memory(tmp_path):
    big = tmp_path / "big.jsonl"
    small = tmp_path / "small.jsonl"
    _generate(big, N_LINES)
    _generate(small, 20)
    check = """
        import sys
        from tuneforge.data import check_file
        r = check_file(sys.argv[1] if len(sys.argv) > 1 else {path!r}, tokenizer="cl100k_base")
        print("EXAMPLES", r.n_valid, r.stats["tokens"]["total"])
    """
    base_mb, _ = _child(check.format(path=str(small)))
    big_mb, out = _child(check.format(path=str(big)))
    assert f"EXAMPLES {N_LINES} " in out
    growth = big_mb - base_mb
    # control: keeping every parsed example in memory (what the cookbook notebook does)
    load_mb, _ = _child(f"""
        import json
        from tuneforge.data import check_file
        rows = [json.loads(line) for line in open({str(big)!r}, encoding="utf-8")]
        print(len(rows))
    """)
    print(f"peak RSS: baseline {base_mb} MB, 200k check {big_mb} MB, load-everything control {load_mb} MB")
    assert growth < BOUND_MB, f"check grew peak RSS by {growth} MB"
    assert load_mb - base_mb > BOUND_MB, f"control grew only {load_mb - base_mb} MB: the bound could not fail"
