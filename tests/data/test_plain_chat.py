"""The plain-chat path of the data check (data/plain_chat.py, counting by words in
data/wordcount.py) gives exactly what the general path gives."""

from __future__ import annotations

import json
import random

import pytest

from tuneforge.data.plain_chat import plain_chat, plain_problems
from tuneforge.data.readers import Record
from tuneforge.data.textscan import needs_ws_normalising
from tuneforge.data.tokens import OpenAICounter
from tuneforge.data.validate import Checker, check_example
from tuneforge.data.wordcount import WordCounts

# word pieces that meet the split patterns' corner cases: contractions, digits runs, punctuation
# runs, letters of several scripts and cases, marks, emoji, special tokens' text, control chars
PIECES = ["a", "I", "the", "The", "THE", "don't", "'s", "'S", "'ll", "'", "1", "12", "1234567", "3.14", "-", "--",
          "...", "?!", "/", "//", "<|endoftext|>", "<|fim_prefix|>", "<|", "|>", "数据", "訓練", "ひらがな", "한국어",
          "слово", "كلمة", "é", "e\u0301", "\u0301", "🙂", "👍🏽", "x\x00y", "\x01", "Q7:", "word.", "(ok)", "ÆØÅ",
          "ǅ", "ʰ", "\ud800", "a\ud83d\ude00b"]


def _normalised_text(rnd: random.Random) -> str:
    n = rnd.choice((rnd.randint(1, 14), rnd.randint(30, 90)))
    words = ["".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 3))) for _ in range(n)]
    return " ".join(words)


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_word_counts_equal_tiktoken(encoding):
    counter = OpenAICounter(encoding)
    rnd = random.Random(3)
    texts = list(dict.fromkeys(_normalised_text(rnd) for _ in range(3000)))
    assert all(not needs_ws_normalising([t]) for t in texts)  # what the checker establishes first
    expected = {t: counter._encode_len(t) for t in texts}
    words = WordCounts()
    for part in (texts[:500], texts[500:1500], texts[1500:], texts):  # cold, then ever warmer caches
        known: dict[str, int] = {}
        strings, finish = words.split_counts(part, known)
        finish([counter._encode_len(s) for s in strings], lambda s: pytest.fail(f"encoded whole: {s!r}"))
        assert known == {t: expected[t] for t in part}
    assert not words.split_counts(texts, {})[0]  # every word is known by now: nothing left to encode


def _chat(rnd: random.Random, i: int) -> dict:
    roles = rnd.choice([["system", "user", "assistant"], ["user", "assistant"], ["system", "user", "assistant", "user"],
                        ["system", "user"], ["assistant"], ["user", "assistant", "user", "assistant"]])
    msgs = [{"role": r, "content": _normalised_text(rnd) if rnd.random() < 0.8 else f" Q{i}:  odd\tspacing "}
            for r in roles]
    if i % 9 == 0:
        msgs[-1]["content"] = msgs[0]["content"]  # repeated strings (cached) and duplicate answers
    if i % 13 == 0:
        msgs[0]["content"] = rnd.choice(["", "   ", "\n"])  # blank: the general path reports it
    if i % 17 == 0:
        msgs[-1]["weight"] = 1  # not plain: the general path, same texts
    return {"messages": msgs}


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_plain_chat_path_gives_the_general_report(tmp_path, encoding):
    rnd = random.Random(5)
    examples = [_chat(rnd, i) for i in range(1500)]
    examples += examples[:40]  # exact duplicates
    for ex in examples[100:140]:  # near duplicates: the same words, other spacing
        msgs = [dict(m) for m in ex["messages"]]
        msgs[-1]["content"] = msgs[-1]["content"].replace(" ", "  ", 1) + " "
        examples.append({"messages": msgs})
    assert sum(plain_chat(ex) is not None for ex in examples) > 1000

    def report(fast: bool) -> dict:
        counter = OpenAICounter(encoding, joined=fast, words=fast)
        ch = Checker("chats.jsonl", counter=counter, fast=fast, per_example=True, max_tokens=60, batch_size=100)
        for i, ex in enumerate(examples, 1):
            ch.feed(Record(i, json.loads(json.dumps(ex))))
        return ch.finish().to_dict()

    fast, plain = report(True), report(False)
    assert fast == plain
    codes = {i["code"] for i in plain["issues"]}
    assert {"duplicate_example", "near_duplicate_example", "empty_content", "missing_system_message",
            "last_message_not_assistant", "missing_user_message", "example_missing_assistant_message",
            "too_many_tokens", "special_token"} <= codes
    assert len(plain["per_example"]) > 1000


def test_plain_problems_equal_check_example():
    rnd = random.Random(9)
    for _ in range(2000):
        roles = [rnd.choice(["system", "user", "assistant"]) for _ in range(rnd.randint(1, 5))]
        ex = {"messages": [{"role": r, "content": "text"} for r in roles]}
        assert plain_chat(ex) == (roles, ["text"] * len(roles))
        assert plain_problems(roles) == check_example(ex)


@pytest.mark.parametrize("ex", [
    {"messages": [{"role": "user", "content": "hi"}], "tools": []},
    {"messages": [{"role": "user", "content": "hi", "weight": 1}]},
    {"messages": [{"role": "tool", "content": "hi"}]},
    {"messages": [{"role": ["user"], "content": "hi"}]},
    {"messages": [{"role": "user", "content": ["hi"]}]},
    {"messages": [{"role": "user", "content": ""}]},
    {"messages": [{"role": "user", "content": " \u3000"}]},
    {"messages": [{"role": "user", "text": "hi"}]},
    {"messages": ["hi"]},
    {"messages": []},
    {"input": {"messages": []}},
    ["messages"],
])
def test_plain_chat_leaves_everything_else_to_the_general_path(ex):
    assert plain_chat(ex) is None


def test_word_counts_survive_batches_counted_out_of_turn():
    counter = OpenAICounter("cl100k_base")
    words = WordCounts()
    words.MAX_SPACED = 3

    def count(texts, known, pending=None):
        strings, finish = pending or words.split_counts(texts, known)
        finish([counter._encode_len(s) for s in strings], counter._encode_len)

    count(["one two three four"], {})  # 3 words cached: at the bound, kept
    second: dict[str, int] = {}
    pending = words.split_counts(["one two seven", "five eight nine"], second)  # "two" cached, "seven" new
    count(["ten eleven twelve"], {})  # past the bound now ...
    count(["thirteen"], {})  # ... so this batch clears the cache before the second one is finished
    assert "two" not in words.spaced
    count(None, second, pending)
    assert second == {t: counter._encode_len(t) for t in ("one two seven", "five eight nine")}
