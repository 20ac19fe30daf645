from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tuneforge.cli.data import app
from tuneforge.data import FixOptions, OpenAICounter, check_file, fix_file

runner = CliRunner()


def _rows(p):
    return [json.loads(s) for s in p.read_text(encoding="utf-8").splitlines()]


def _chat(q, a):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


@pytest.fixture
def messy(tmp_path):
    rows = [_chat(f"  question {i} ", f"answer {i}\n") for i in range(20)]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, lines[0])                       # duplicate (line 4)
    lines.insert(5, '{"messages": [broken')         # invalid JSON (line 6)
    lines.append(json.dumps(_chat("q", "")))        # empty answer (line 23)
    lines.append(json.dumps({"messages": [{"role": "user", "content": "long"}, {"role": "assistant", "content": "short"},
                                          {"role": "user", "content": "more"}, {"role": "assistant", "content": "word " * 400}]}))
    p = tmp_path / "messy.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_fix_drops_strips_dedupes_and_lists(messy, tmp_path):
    before = messy.read_bytes()
    out = tmp_path / "fixed.jsonl"
    res = fix_file(messy, out)
    assert messy.read_bytes() == before  # input untouched
    assert [ln for ln, _ in res.dropped] == [4, 6, 23]
    assert res.reasons == {"duplicate_example": 1, "invalid_json": 1, "empty_content": 1}
    rows = _rows(out)
    assert len(rows) == res.written == 21
    assert rows[0]["messages"][0]["content"] == "question 0" and rows[0]["messages"][1]["content"] == "answer 0"
    assert check_file(out).ok
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


def test_fix_truncate_and_drop_long(messy, tmp_path):
    counter = OpenAICounter("cl100k_base")
    res = fix_file(messy, tmp_path / "t.jsonl", FixOptions(long="truncate", counter=counter, max_tokens=100))
    assert res.truncated == 1
    last = _rows(tmp_path / "t.jsonl")[-1]["messages"]
    assert [m["content"] for m in last] == ["long", "short"]
    res = fix_file(messy, tmp_path / "d.jsonl", FixOptions(long="drop", counter=counter, max_tokens=100))
    assert res.reasons["too_many_tokens"] == 1 and res.written == 20
    with pytest.raises(ValueError, match="tokenizer"):
        fix_file(messy, tmp_path / "x.jsonl", FixOptions(long="drop"))


def test_split_and_shuffle_are_seeded(messy, tmp_path):
    r1 = fix_file(messy, tmp_path / "a" / "out.jsonl", FixOptions(split=0.25, shuffle=True, seed=7))
    r2 = fix_file(messy, tmp_path / "b" / "out.jsonl", FixOptions(split=0.25, shuffle=True, seed=7))
    r3 = fix_file(messy, tmp_path / "c" / "out.jsonl", FixOptions(split=0.25, shuffle=True, seed=8))
    assert (r1.train, r1.valid) == (16, 5)
    t1, v1 = _rows(tmp_path / "a" / "out.train.jsonl"), _rows(tmp_path / "a" / "out.valid.jsonl")
    assert t1 == _rows(tmp_path / "b" / "out.train.jsonl") and v1 == _rows(tmp_path / "b" / "out.valid.jsonl")
    assert t1 != _rows(tmp_path / "c" / "out.train.jsonl")
    keys = lambda rows: {r["messages"][0]["content"] for r in rows}  # noqa: E731
    assert not keys(t1) & keys(v1) and len(keys(t1) | keys(v1)) == 21
    assert r2.outputs == {"train": str(tmp_path / "b" / "out.train.jsonl"), "valid": str(tmp_path / "b" / "out.valid.jsonl")}
    assert r3.valid == 5


def test_fix_refuses_to_overwrite_input(messy):
    with pytest.raises(ValueError, match="input"):
        fix_file(messy, messy)


def test_cli_check_json_and_exit_codes(fixtures, tmp_path):
    r = runner.invoke(app, ["check", str(fixtures / "chat_valid.jsonl"), "-t", "cl100k_base", "--json", "--per-example"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["ok"] and d["stats"]["tokens"]["min"] > 0 and len(d["per_example"]) == 12
    assert d["estimate"]["epochs"] == 8  # 12 examples: 100 // 12
    r = runner.invoke(app, ["check", str(fixtures / "bad_chat.jsonl"), "-t", "none", "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["errors"] > 0
    r = runner.invoke(app, ["check", str(tmp_path / "missing.jsonl"), "-t", "none"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["check", str(fixtures / "bad_chat.jsonl"), "-t", "none"])
    assert "invalid_json" in r.output and "Issues" in r.output


def test_cli_check_default_local_tokenizer(fixtures):
    r = runner.invoke(app, ["check", str(fixtures / "chat_valid.jsonl"), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert "smollm2" in d["tokenizer"].lower() and d["estimate"]["local"]["params"] == 135e6


def test_cli_convert_chatlaw_one_command(fixtures, tmp_path):
    out = tmp_path / "law.jsonl"
    r = runner.invoke(app, ["convert", str(fixtures / "chatlaw.jsonl"), "-o", str(out), "--map", "system=meta_instruction",
                            "--map", "turns=chat", "--map", "user=咨询者", "--map", "assistant=ChatLAW"])
    assert r.exit_code == 0, r.output
    assert _rows(out) == _rows(fixtures / "expected" / "chatlaw.jsonl")
    r = runner.invoke(app, ["convert", str(fixtures / "chatlaw.jsonl"), "-o", str(out), "--json"])
    assert r.exit_code == 2 and "--map" in json.loads(r.stdout)["error"]["message"]


def test_cli_convert_detects_and_fix_split(fixtures, tmp_path):
    r = runner.invoke(app, ["convert", str(fixtures / "sharegpt.jsonl"), "-o", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 0 and "Detected ShareGPT" in r.output
    r = runner.invoke(app, ["convert", str(fixtures / "legacy.jsonl"), "-o", str(tmp_path / "l.jsonl"), "--strip-legacy",
                            "--fix", "--split", "2", "--json"])
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["train"] == 8 and d["valid"] == 2


def test_cli_fix_stats_text(fixtures, tmp_path, messy):
    r = runner.invoke(app, ["fix", str(messy), "-o", str(tmp_path / "f.jsonl"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["dropped"] == 3
    r = runner.invoke(app, ["stats", str(fixtures / "chat_valid.jsonl"), "-t", "o200k_base", "--json"])
    d = json.loads(r.stdout)
    assert r.exit_code == 0 and d["stats"]["assistant_tokens"]["max"] > 0 and d["max_tokens"] == 65536
    r = runner.invoke(app, ["text", str(fixtures / "policy.pdf"), "--json"])
    assert json.loads(r.stdout)[1]["page"] == 2
    for cmd in ("convert", "check", "fix", "stats", "text"):
        h = runner.invoke(app, [cmd, "--help"])
        assert h.exit_code == 0 and "--json" in h.output
