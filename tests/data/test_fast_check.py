"""The data check's fast paths (textscan, the plain-message shortcut, joined tiktoken calls counted in
the background, orjson) give exactly the reports and counts of the plain definitions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tuneforge.data import readers
from tuneforge.data.readers import iter_jsonl
from tuneforge.data.textscan import (
    _OTHER_WS,
    count_ascii_upper,
    needs_ws_normalising,
    script_of,
    script_of_plain,
)
from tuneforge.data.tokens import OpenAICounter, _joining_separator
from tuneforge.data.validate import Checker, check_messages

FIXTURES = Path(__file__).parent / "fixtures"
# characters at the edges of every script range, every kind of whitespace, specials and surrogates
EDGES = "\u303f\u3040\u30ff\u3100\uabff\uac00\ud7af\ud7b0\u4dff\u4e00\u9fff\ua000\u03ff\u0400\u04ff\u0500\u05ff\u0600\u06ff\u0700"
POOL = (["word", "Word", "WORD", "数据", "訓練", "ひらがな", "한국어", "слово", "كلمة", "é", "🙂", "x", "A"] + list(EDGES)
        + list(_OTHER_WS) + [" ", "  ", "\n", "<|endoftext|>", "<|fim_prefix|>", "<|endof", "text|>", "\x00", "'s", "123"])


ODD_LINES = ['{"messages": [broken', '[1, 2]', '{"messages": [{"role": "user", "content": "\\ud800"}]}',
             '{"messages": [], "n": 123456789012345678901234}', '{"x": NaN}', '{"x": 1e400}',
             '{"messages": [{"role": "assistant", "content": "hi", "weight": 18446744073709551616}]}',
             '   ', '"just a string"', '{"a": 1} trailing', '{"a": 1, "a": 2}', '{"f": 0.30000000000000004}']


def _text(rnd: random.Random, k: int | None = None) -> str:
    return "".join(rnd.choice(POOL) + rnd.choice(["", " ", ""]) for _ in range(k if k is not None else rnd.randint(0, 12)))


def _write(path: Path, n: int, seed: int = 1) -> None:
    """Chats with every issue kind the checker reports, odd whitespace, several scripts and the
    JSON corner cases that orjson and json treat differently."""
    rnd = random.Random(seed)
    lines = []
    for i in range(n):
        msgs = [{"role": "system", "content": rnd.choice(["You are helpful.", "Be brief.", "你是助手。"])},
                {"role": "user", "content": f"Q{i % 50}: " + _text(rnd)},
                {"role": "assistant", "content": _text(rnd) or "ok"}]
        kind = i % 23
        if kind == 1:
            msgs[2]["weight"] = rnd.choice([0, 1, 2, True])
        elif kind == 2:
            msgs[1]["name"] = rnd.choice(["bob", 7])
        elif kind == 3:
            msgs.append({"role": "user", "content": "trailing question?"})
        elif kind == 4:
            msgs[1]["content"] = [{"type": "text", "text": _text(rnd)}, {"type": "image_url", "image_url": {"url": "x"}}]
        elif kind == 5:
            msgs[2] = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"a": i})}}]}
            msgs.append({"role": "tool", "tool_call_id": rnd.choice(["c1", "zz"]), "content": "42"})
            msgs.append({"role": "assistant", "content": "done"})
        elif kind == 6:
            msgs[0] = {"role": "wizard", "content": "?"}
        elif kind == 7:
            msgs[2]["content"] = rnd.choice(["", "   ", "\t"])
        elif kind == 8:
            msgs = msgs[:2]
        elif kind == 9:
            msgs[2]["content"] = "SHOUTING LOUDLY ABOUT EVERYTHING IN CAPITALS " * 3
        elif kind == 10:
            msgs[2]["content"] = "long " * 2100
        elif kind == 11:
            msgs[1]["extra"] = 1
        elif kind == 12:
            msgs = msgs[1:]
        elif kind == 13:  # near duplicates: the same words, other whitespace
            msgs[1]["content"], msgs[2]["content"] = rnd.choice([("same  question", "same answer"),
                                                                 ("same question", " same\tanswer"),
                                                                 ("same question", "same answer")])
        line = json.dumps({"messages": msgs}, ensure_ascii=rnd.random() < 0.3)
        if kind == 14:
            line = json.dumps({"messages": msgs, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]})
        lines.append(line)
        if i % 41 == 3:  # every one of them, in turn
            lines.append(ODD_LINES[i // 41 % len(ODD_LINES)])
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass") + b'{"bad": "\xff"}\n')


def _report(path: Path, *, fast: bool, counter: OpenAICounter | None) -> dict:
    ch = Checker(str(path), counter=counter, fast=fast, per_example=True, max_tokens=200, batch_size=64)
    for rec in iter_jsonl(path):
        ch.feed(rec)
    return ch.finish().to_dict()


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base", None])
def test_fast_report_equals_plain_report(tmp_path, encoding):
    path = tmp_path / "mixed.jsonl"
    _write(path, 1200)
    plain = _report(path, fast=False, counter=OpenAICounter(encoding, joined=False) if encoding else None)
    fast = _report(path, fast=True, counter=OpenAICounter(encoding) if encoding else None)
    assert fast == plain
    codes = {i["code"] for i in plain["issues"]}
    assert {"invalid_json", "data_type", "near_duplicate_example",
            "duplicate_example", "invalid_weight", "uppercase_heavy", "long_answer", "mixed_languages",
            "empty_content", "unrecognized_role", "invalid_tool_call", "missing_system_message"} <= codes
    if encoding:
        assert {"special_token", "too_many_tokens"} <= codes and plain["stats"]["tokens"]["total"] > 0
    assert len(plain["stats"]["languages"]) >= 4


@pytest.mark.parametrize("name", ["bad_chat.jsonl", "chat_valid.jsonl", "dpo.jsonl", "legacy.jsonl", "chatlaw.jsonl"])
def test_fast_report_equals_plain_report_on_fixtures(name):
    path = FIXTURES / name
    method = "auto"
    plain = Checker(str(path), counter=OpenAICounter(joined=False), fast=False, method=method)
    fast = Checker(str(path), counter=OpenAICounter(), method=method)
    for rec in iter_jsonl(path):
        plain.feed(rec)
        fast.feed(rec)
    assert fast.finish().to_dict() == plain.finish().to_dict()


def test_orjson_reader_gives_json_records(tmp_path, monkeypatch):
    path = tmp_path / "mixed.jsonl"
    _write(path, 600, seed=3)
    assert readers.orjson is not None  # a dependency: the fast path is what runs
    fast = [(r.line, r.data, r.error, r.column, r.code) for r in iter_jsonl(path)]
    monkeypatch.setattr(readers, "orjson", None)
    plain = [(r.line, r.data, r.error, r.column, r.code) for r in iter_jsonl(path)]
    assert repr(fast) == repr(plain)  # repr: NaN != NaN, and ints must stay ints
    assert any("invalid JSON" in (r[2] or "") for r in plain) and any(isinstance(r[1], dict) and "n" in r[1] for r in plain)


def test_text_scans_equal_their_definitions():
    rnd = random.Random(7)
    texts = [_text(rnd) for _ in range(4000)] + [c for c in EDGES] + ["", " ", "a", "\ud800x"]
    for t in texts:
        assert script_of(t) == script_of_plain(t), ascii(t)
        assert count_ascii_upper(t) == sum("A" <= c <= "Z" for c in t), ascii(t)
    for _ in range(4000):
        group = [_text(rnd, rnd.randint(0, 4)) for _ in range(rnd.randint(1, 4))]
        if not needs_ws_normalising(group):  # never a false "no": that would miss near-duplicates
            assert all(" ".join(t.split()) == t for t in group), ascii(group)
    assert not needs_ws_normalising(["plain text", "数据 训练", ""])
    # every whitespace character str.split() knows is searched for (none above U+3000 today)
    assert set(_OTHER_WS) == {chr(c) for c in range(0x110000) if chr(c).isspace() and c != 32}


def test_plain_message_shortcut_equals_general_path():
    rnd = random.Random(5)
    values = ["hi", "", "  ", None, 3, ["x"], [{"type": "text", "text": "t"}], {"a": 1}]
    roles = ["system", "user", "assistant", "tool", "function", "wizard", None, 7]
    for _ in range(3000):
        msgs = []
        for _ in range(rnd.randint(0, 4)):
            m = {}
            if rnd.random() < 0.9:
                m["role"] = rnd.choice(roles)
            if rnd.random() < 0.9:
                m["content"] = rnd.choice(values)
            if rnd.random() < 0.1:
                m[rnd.choice(["weight", "name", "extra"])] = rnd.choice([0, 1, "n"])
            msgs.append(m if rnd.random() < 0.95 else rnd.choice(["text", 5, None]))
        assert check_messages(msgs) == check_messages(msgs, fast=False), msgs


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_joined_encoder_call_counts_each_string_alone(encoding):
    counter = OpenAICounter(encoding)
    rnd = random.Random(11)
    strs = [_text(rnd, rnd.randint(0, 30)) for _ in range(3000)]
    strs += ["", "", " ", "\n\n", "a ", " a", "<|endoftext|>", "x<|endoftext|>y", "<|endofprompt|>", "<|endoftext",
             "|>", "\ud800 lone", "🙂" * 50, "word " * 500 + "   "]
    rnd.shuffle(strs)
    expected = [counter._encode_len(s) for s in strs]
    assert counter._lengths_joined(strs) == expected
    assert counter._lengths(strs) == expected  # on the thread pool, in slices
    examples = [{"messages": [{"role": "user", "content": a}, {"role": "assistant", "content": b, "name": "n"}]}
                for a, b in zip(strs[::2], strs[1::2], strict=False)]
    assert counter.count_batch(examples) == OpenAICounter(encoding, joined=False).count_batch(examples)


def test_joining_separator_needs_a_token_that_cannot_straddle():
    assert _joining_separator({"<|endoftext|>": 1, "<|fim_prefix|>": 2}) == ("<|endoftext|>", 1)
    assert _joining_separator({"abab": 1}) is None          # a border: "ab" could start a match
    assert _joining_separator({"<s>": 1, "<s>x": 2}) is None  # one token starts with the other
    assert _joining_separator({"<s>": 1, "<t>": 2}) == ("<s>", 1)
