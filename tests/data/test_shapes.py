from __future__ import annotations

import json

import pytest

from tuneforge.data import (
    HFCounter,
    MapError,
    ShapeError,
    check_file,
    convert_file,
    convert_record,
    detect_shape,
    flatten_tool_messages,
    iter_jsonl,
    parse_map,
    plan_conversion,
)

CHATLAW_MAP = ["system=meta_instruction", "turns=chat", "user=咨询者", "assistant=ChatLAW"]
GOLDEN = {
    "legacy": ("legacy.jsonl", {"strip_legacy": True}),
    "alpaca": ("alpaca.json", {}),
    "sharegpt": ("sharegpt.jsonl", {}),
    "dpo_legacy": ("dpo_legacy.jsonl", {}),
    "pairs": ("pairs.jsonl", {}),
    "chatlaw": ("chatlaw.jsonl", {"mapping": CHATLAW_MAP}),
    "qa_gbk": ("qa_gbk.csv", {}),
    "qa_xlsx": ("qa.xlsx", {}),
}


def _lines(p):
    return [json.loads(s) for s in p.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_conversions(fixtures, tmp_path, name):
    src, kw = GOLDEN[name]
    out = tmp_path / f"{name}.jsonl"
    res = convert_file(fixtures / src, out, **kw)
    assert res.dropped_count == 0
    assert _lines(out) == _lines(fixtures / "expected" / f"{name}.jsonl")


@pytest.mark.parametrize("src,shape", [
    ("chat_valid.jsonl", "chat"), ("legacy.jsonl", "prompt_completion"), ("alpaca.json", "alpaca"),
    ("sharegpt.jsonl", "sharegpt"), ("dpo.jsonl", "dpo"), ("dpo_legacy.jsonl", "dpo"),
    ("pairs.jsonl", "preference_pairs"), ("qa.csv", "qa_table"), ("qa.tsv", "qa_table"), ("qa_gbk.csv", "qa_table"),
    ("qa.xlsx", "qa_table"),
])
def test_detection_message(fixtures, src, shape):
    conv = plan_conversion(fixtures / src)
    assert conv.shape == shape
    assert conv.message.startswith("Detected ")


def test_unknown_shape_asks_for_map(fixtures):
    with pytest.raises(ShapeError, match="--map"):
        plan_conversion(fixtures / "chatlaw.jsonl")


def test_legacy_without_strip_keeps_conventions(fixtures, tmp_path):
    out = tmp_path / "o.jsonl"
    convert_file(fixtures / "legacy.jsonl", out)
    first = _lines(out)[0]["messages"]
    assert first[0]["content"] == "Review: great film\n\n###\n\n" and first[1]["content"] == " positive END"


def test_chatlaw_mapping_one_command_then_clean(fixtures, tmp_path, smol_tokenizer):
    out = tmp_path / "chatlaw.chat.jsonl"
    res = convert_file(fixtures / "chatlaw.jsonl", out, mapping=CHATLAW_MAP)
    assert res.written == 2
    msgs = _lines(out)[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    rep = check_file(out, tokenizer=smol_tokenizer)
    assert rep.errors == 1 and "too_few_examples" in rep.issues  # only 2 examples: the sole error
    assert not {c for c, i in rep.issues.items() if i.severity == "warning"}


def test_system_add_and_replace(fixtures, tmp_path):
    out = tmp_path / "a.jsonl"
    convert_file(fixtures / "alpaca.json", out, system="NEW")
    rows = _lines(out)
    assert all(r["messages"][0] == {"role": "system", "content": "NEW"} for r in rows)
    assert sum(1 for r in rows for m in r["messages"] if m["role"] == "system") == 3
    convert_file(fixtures / "alpaca.json", out, system="NEW", replace_system=False)
    rows = _lines(out)
    assert rows[1]["messages"][0]["content"] == "你是翻译助手。" and rows[0]["messages"][0]["content"] == "NEW"


def test_map_spec_parsing_and_errors():
    spec = parse_map(["user=instruction+input", "assistant=output", "system=meta.sys"])
    ex = convert_record({"instruction": "Do", "input": "this", "output": "ok", "meta": {"sys": "S"}}, "mapped",
                        __import__("tuneforge.data", fromlist=["ConvertOptions"]).ConvertOptions(mapping=spec))
    assert ex["messages"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "Do\n\nthis"},
                              {"role": "assistant", "content": "ok"}]
    with pytest.raises(MapError, match="unknown key"):
        parse_map(["usr=x"])
    with pytest.raises(MapError, match="KEY=VALUE"):
        parse_map(["user"])
    with pytest.raises(MapError, match="needs"):
        parse_map(["user=q"])
    with pytest.raises(MapError, match="chosen"):
        parse_map(["chosen=a"])


def test_map_message_style_turns_and_dpo(tmp_path):
    from tuneforge.data import ConvertOptions

    spec = parse_map(["turns=dialog", "role=speaker", "content=text", "roles=customer:user,agent:assistant"])
    rec = {"dialog": [{"speaker": "customer", "text": "Broken?"}, {"speaker": "agent", "text": "Let me help."}]}
    ex = convert_record(rec, "mapped", ConvertOptions(mapping=spec))
    assert ex["messages"] == [{"role": "user", "content": "Broken?"}, {"role": "assistant", "content": "Let me help."}]
    spec = parse_map(["prompt=q", "chosen=good", "rejected=bad"])
    ex = convert_record({"q": "2+2?", "good": "4", "bad": "5"}, "mapped", ConvertOptions(mapping=spec))
    assert ex["preferred_output"] == [{"role": "assistant", "content": "4"}]
    with pytest.raises(MapError, match="not found"):
        convert_record({"x": 1}, "mapped", ConvertOptions(mapping=parse_map(["user=q", "assistant=a"])))


def test_unconvertible_records_are_listed(tmp_path):
    src = tmp_path / "mixed.jsonl"
    src.write_text('{"question": "q1", "answer": "a1"}\n{"question": "q2"}\nbroken\n', encoding="utf-8")
    out = tmp_path / "o.jsonl"
    res = convert_file(src, out, mapping=["user=question", "assistant=answer"])
    assert res.written == 1
    assert [ln for ln, _ in res.dropped] == [2, 3]
    assert "answer" in res.dropped[0][1] and "invalid JSON" in res.dropped[1][1]


def test_convert_never_overwrites_input(fixtures, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes((fixtures / "chat_valid.jsonl").read_bytes())
    with pytest.raises(ValueError, match="input"):
        convert_file(src, src)
    assert src.read_bytes() == (fixtures / "chat_valid.jsonl").read_bytes()


def test_detect_majority():
    d = detect_shape([{"instruction": "a", "output": "b"}] * 3 + [{"x": 1}])
    assert d.shape == "alpaca" and d.counts == {"alpaca": 3, "unknown": 1}


ROUND_TRIP = ["chat_valid.jsonl", "legacy.jsonl", "alpaca.json", "sharegpt.jsonl", "qa.csv", "qa.tsv", "qa_gbk.csv",
              "qa_bom.csv", "qa.xlsx", "blog", "handbook.docx", "page.html", "policy.pdf", "notes.txt"]


@pytest.mark.parametrize("src", ROUND_TRIP)
def test_round_trip_convert_check_render(fixtures, tmp_path, smol_tokenizer, src):
    """convert → check has no errors (except the 10-example minimum) → the chat template renders all."""
    out = tmp_path / "out.jsonl"
    kw = {"strip_legacy": True} if src == "legacy.jsonl" else {}
    if src == "blog":
        kw = {"chunk_size": 300, "overlap": 60}
    res = convert_file(fixtures / src, out, **kw)
    assert res.written > 0 and res.dropped_count == 0
    rep = check_file(out, tokenizer=smol_tokenizer)
    errors = {c for c, i in rep.issues.items() if i.severity == "error"} - {"too_few_examples"}
    assert errors == set(), rep.to_dict()["issues"]
    assert rep.n_valid == res.written
    counter = HFCounter(smol_tokenizer)
    exs = [r.data for r in iter_jsonl(out)]
    for ex, c in zip(exs, counter.count_batch(exs), strict=True):
        assert c.error is None and c.assistant > 0 and c.total > c.assistant
        text = smol_tokenizer.apply_chat_template(ex["messages"] if all(isinstance(m.get("content"), str) for m in ex["messages"]) else
                                                  flatten_tool_messages(ex["messages"]), tokenize=False)
        assert ex["messages"][-1]["content"] in text
