from __future__ import annotations

import json

import pytest

from tuneforge.data import CODES, check_example, check_file, load_chat_examples
from tuneforge.data.api import DataValidationError

# line → codes expected on that line of fixtures/bad_chat.jsonl
BAD_CHAT = {
    1: {"invalid_json"}, 2: {"data_type"}, 3: {"missing_messages_list"}, 4: {"message_missing_key", "missing_user_message"},
    5: {"message_unrecognized_key"}, 6: {"unrecognized_role", "missing_user_message"}, 7: {"missing_content"},
    8: {"example_missing_assistant_message"}, 9: {"empty_content"}, 10: {"invalid_weight"}, 11: {"no_trained_tokens"},
    12: {"invalid_tool_call"}, 13: {"invalid_tools"}, 14: {"invalid_content"}, 15: {"format_mismatch"},
    16: {"missing_content"}, 17: {"invalid_json"}, 18: {"last_message_not_assistant", "example_unrecognized_key"},
    19: {"message_data_type", "missing_user_message"}, 20: {"missing_messages_list"},
}
BAD_DPO = {1: {"dpo_missing_input"}, 2: {"dpo_missing_output"}, 3: {"dpo_invalid_output"}, 4: {"dpo_identical_outputs"},
           5: {"dpo_input_ends_with_assistant"}, 6: {"dpo_legacy_keys"}, 7: {"format_mismatch"}}


def _by_line(report):
    got: dict[int, set[str]] = {}
    for code, iss in report.issues.items():
        if code in ("missing_system_message",):
            continue
        for ln in iss.lines:
            got.setdefault(ln, set()).add(code)
    return got


def test_every_bad_chat_line_gets_its_code(fixtures):
    rep = check_file(fixtures / "bad_chat.jsonl")
    got = _by_line(rep)
    for line, codes in BAD_CHAT.items():
        assert got.get(line, set()) == codes, (line, got.get(line))
    assert rep.exit_code == 1 and not rep.ok
    assert "alpaca" in rep.issues["missing_messages_list"].samples[1][1].lower()
    assert rep.issues["invalid_json"].samples[0][1].endswith("(line 1, column 88)")


def test_every_bad_dpo_line_gets_its_code(fixtures):
    rep = check_file(fixtures / "bad_dpo.jsonl", method="dpo")
    got = _by_line(rep)
    for line, codes in BAD_DPO.items():
        assert got.get(line, set()) == codes, (line, got.get(line))


def test_valid_dpo_file_is_clean(fixtures):
    rep = check_file(fixtures / "dpo.jsonl", method="auto", tokenizer="cl100k_base")
    assert rep.method == "dpo" and rep.ok and rep.errors == 0 and rep.warnings == 0
    assert rep.stats["tokens"]["min"] > 0


def test_valid_tool_calls_weights_names_raise_nothing(fixtures):
    """No false positives of the cookbook script: tool calls, tool role, null content + tool_calls,
    function_call, weight, name, parallel_tool_calls, tools/functions."""
    rep = check_file(fixtures / "chat_valid.jsonl", tokenizer="cl100k_base")
    assert rep.ok and rep.warnings == 0, rep.to_dict()["issues"]
    assert set(rep.issues) <= {"few_examples", "mixed_languages"}
    for line in (fixtures / "chat_valid.jsonl").read_text().splitlines():
        assert [c for c, _ in check_example(json.loads(line)) if CODES[c][0] != "info"] == []


def _chat(q, a, sys=None):
    m = [{"role": "system", "content": sys}] if sys else []
    return {"messages": m + [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def _write(tmp_path, rows, name="f.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return p


def test_dataset_level_codes(tmp_path):
    rows = [_chat(f"Please answer carefully the following question: q{i}", f"Answer: {i} is fine") for i in range(12)]
    rows.append(rows[0])                                              # line 13: exact duplicate of line 1
    rows.append(_chat("Please answer carefully the following question:  q1 ", "Answer: 1 is fine"))  # near dup of 2
    rows.append(_chat("Please answer carefully the following question: 中文问题", "Answer: 这是中文回答"))
    rows.append(_chat("Please answer carefully the following question: shout", "Answer: THIS IS ALL UPPERCASE TEXT HERE"))
    rows.append(_chat("Please answer carefully the following question: long", "Answer: " + "x" * 10_001))
    rows.append(_chat("Please answer carefully the following question: tok", "Answer: stop <|endoftext|> here"))
    rep = check_file(_write(tmp_path, rows), tokenizer="cl100k_base", max_tokens=100)
    iss = rep.issues
    assert iss["duplicate_example"].lines == [13] and "line 1" in iss["duplicate_example"].samples[0][1]
    assert iss["near_duplicate_example"].lines == [14] and "line 2" in iss["near_duplicate_example"].samples[0][1]
    assert "near_duplicate_example" not in _by_line(rep).get(13, set())
    assert iss["common_prompt_prefix"].count == 1 and iss["common_answer_prefix"].count == 1
    assert iss["uppercase_heavy"].lines == [16]
    assert iss["long_answer"].lines == [17]
    assert iss["too_many_tokens"].lines == [17]  # 10k chars > 100 tokens
    assert iss["special_token"].lines == [18]
    assert iss["few_examples"].count == 1
    assert "too_few_examples" not in iss and "identical_answers" not in iss
    assert rep.ok  # all of these are warnings / info
    # mixed languages reported once at least 2 % are in another script
    rep2 = check_file(_write(tmp_path, rows * 0 + [_chat(f"q{i}", f"a{i}") for i in range(10)] + [_chat("问题", "回答")], "m.jsonl"))
    assert "mixed_languages" in rep2.issues and "zh 1" in rep2.issues["mixed_languages"].samples[0][1]


def test_too_few_and_identical_answers(tmp_path):
    rep = check_file(_write(tmp_path, [_chat(f"q{i}", "same") for i in range(5)]))
    assert {"too_few_examples", "identical_answers"} <= set(rep.issues) and rep.exit_code == 1
    ok = check_file(_write(tmp_path, [_chat(f"q{i}", f"a{i}") for i in range(10)], "ten.jsonl"))
    assert "too_few_examples" not in ok.issues and "identical_answers" not in ok.issues and ok.ok


def test_unusable_inputs(tmp_path):
    assert check_file(tmp_path / "missing.jsonl").exit_code == 2
    (tmp_path / "empty.jsonl").write_text("\n\n")
    rep = check_file(tmp_path / "empty.jsonl")
    assert rep.exit_code == 2 and "empty_file" in rep.issues
    (tmp_path / "garbage.jsonl").write_text("nope\nstill nope\n")
    assert check_file(tmp_path / "garbage.jsonl").exit_code == 2
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    rep = check_file(tmp_path / "x.csv")
    assert rep.exit_code == 2 and "convert" in rep.issues["unreadable_file"].samples[0][1]


def test_summary_message_and_json(fixtures):
    rep = check_file(fixtures / "bad_chat.jsonl")
    msg = rep.summary_message(limit=3)
    assert msg.startswith("The job failed due to a file format error in the training file. Line 1: invalid JSON")
    assert "Line 2: the line is a JSON list" in msg and "Line 3:" in msg and "Line 4:" not in msg
    assert "more errors" in msg
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["ok"] is False and d["exit_code"] == 1 and d["issues"][0]["severity"] == "error"
    ok = check_file(fixtures / "chat_valid.jsonl")
    assert ok.summary_message().startswith("The training file passed validation")


def test_every_code_is_documented_and_tested(fixtures):
    tested = set().union(*BAD_CHAT.values(), *BAD_DPO.values()) | {
        "duplicate_example", "near_duplicate_example", "common_prompt_prefix", "common_answer_prefix", "uppercase_heavy",
        "long_answer", "too_many_tokens", "special_token", "few_examples", "too_few_examples", "identical_answers",
        "mixed_languages", "empty_file", "unreadable_file", "missing_system_message", "chat_template_error",
        "json_too_deep"}  # json_too_deep: tests/data/test_hardening_cli.py
    assert tested == set(CODES)
    doc = (fixtures.parents[2] / "docs" / "data-formats.md").read_text(encoding="utf-8")
    assert all(f"`{c}`" in doc for c in CODES)


def test_chat_template_error(tmp_path, smol_tokenizer):
    from tuneforge.data import HFCounter

    class Strict:  # a real tokenizer whose template refuses system messages
        def __init__(self, tok):
            self._t = tok
            self.chat_template = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') }}{% endif %}{{ m.content }}{% endfor %}"

        def __getattr__(self, k):
            return getattr(self._t, k)

        def apply_chat_template(self, msgs, **kw):
            return self._t.apply_chat_template(msgs, chat_template=self.chat_template, **kw)

        def __call__(self, *a, **kw):
            return self._t(*a, **kw)

    rows = [_chat(f"q{i}", f"a{i}") for i in range(10)] + [_chat("q", "a", sys="S")]
    rep = check_file(_write(tmp_path, rows), tokenizer=HFCounter(Strict(smol_tokenizer)))
    assert rep.issues["chat_template_error"].lines == [11]


def test_load_chat_examples(fixtures, tmp_path):
    exs = load_chat_examples(fixtures / "chat_valid.jsonl")
    assert len(exs) == 12 and exs[9]["messages"][2]["tool_calls"][0]["id"] == "call_1"
    with pytest.raises(DataValidationError) as ei:
        load_chat_examples(fixtures / "bad_chat.jsonl")
    assert "Line 1" in str(ei.value) and ei.value.report.errors > 0
    lenient = load_chat_examples(fixtures / "bad_chat.jsonl", strict=False)
    assert len(lenient) == 1  # only line 18 has no errors (its problems are warnings)
