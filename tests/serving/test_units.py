"""Pieces of the engine that need no model: stop strings, token bytes, upstream config."""

from __future__ import annotations

import json

import pytest

from tuneforge.inference.tokens import StopText


def test_stop_text_holds_back_partial_stop_and_cuts_at_the_stop():
    stop = StopText(["END", "\n\n"])
    out, hit = stop.push("Hello E")
    assert (out, hit) == ("Hello ", False)  # "E" might start "END"
    out, hit = stop.push("N")
    assert (out, hit) == ("", False)
    out, hit = stop.push("Dmore")
    assert (out, hit) == ("", True)
    assert stop.text == "Hello "
    other = StopText(["END"])
    assert other.push("Ex", final=False) == ("Ex", False)
    assert other.push("tra", final=True) == ("tra", False)


def test_token_table_bytes_roundtrip(tiny_model_dir):
    from transformers import AutoTokenizer

    from tuneforge.inference.tokens import Detokenizer, build_token_table

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    table = build_token_table(tokenizer, len(tokenizer) + 5)
    text = "Hello! 我们的产品支持中文 {\"a\": 1}"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert b"".join(table.token_bytes[i] for i in ids).decode() == text
    assert table.token_bytes[tokenizer.convert_tokens_to_ids("<|im_end|>")] == b""
    assert len(table.token_bytes) == len(tokenizer) + 5 and len(tokenizer) + 4 in table.special
    detok = Detokenizer(tokenizer)
    pieces = [detok.add(i) for i in ids]
    assert "".join(pieces) + detok.flush() == text
    assert all("\ufffd" not in p for p in pieces)  # never half a character


def test_upstream_config_parsing_and_key_hygiene(tmp_path, monkeypatch):
    from tuneforge.gateway import Gateway, parse_upstreams

    monkeypatch.setenv("MY_KEY", "sk-secret-from-env")
    config = [{"name": "openai", "models": ["gpt-*", "ft:gpt-*"], "base_url": "http://proxy/v1",
               "api_key_env": "MY_KEY"},
              {"models": "claude-*", "base_url": "http://other/v1", "api_key": "sk-inline"}]
    path = tmp_path / "upstreams.json"
    path.write_text(json.dumps(config))
    for value in (json.dumps(config), str(path)):
        upstreams = parse_upstreams(value)
        gateway = Gateway(value)
        assert gateway.resolve("gpt-4o-mini").name == "openai"
        assert gateway.resolve("ft:gpt-4o-mini:acme::abc").name == "openai"
        assert gateway.resolve("claude-3").name == "upstream1"
        assert gateway.resolve("smollm2-135m-instruct") is None and gateway.resolve(None) is None
        up = gateway.resolve("gpt-4o")
        assert up.api_key == "sk-secret-from-env"
        assert "sk-secret" not in repr(up) and "sk-secret" not in repr(upstreams)
        assert up.headers({"Authorization": "Bearer client-key", "X-Custom": "1"}) == {
            "X-Custom": "1", "Authorization": "Bearer sk-secret-from-env"}
        assert up.url("chat/completions") == "http://proxy/v1/chat/completions"
        assert set(gateway.secrets()) == {"sk-secret-from-env", "sk-inline"}
    with pytest.raises(ValueError):
        parse_upstreams('[{"models": ["x"]}]')
