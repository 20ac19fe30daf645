"""The grammar layer without a model: llguidance constraints on the tiny tokenizer, budget closing,
triggered tool-call constraints, the output parser, and request checks that must be 400s."""

from __future__ import annotations

import json

import pytest

from tuneforge.errors import InvalidRequest
from tuneforge.inference import grammar as G
from tuneforge.serving import structured
from tuneforge.serving.structured import OutputParser, TextDelta, ToolCallArguments, ToolCallStart

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"], "additionalProperties": False}}}


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    from tuneforge.inference.tokens import build_token_table

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    eos = {tokenizer.convert_tokens_to_ids("<|im_end|>")}
    vocab = len(tokenizer)

    class Info:  # the three BaseInfo fields the grammar layer reads
        pass

    info = Info()
    info.tokenizer, info.vocab_size, info.eos_ids = tokenizer, vocab, eos
    info.table = build_token_table(tokenizer, vocab)
    return info


def _state(constraint, tok, text: str) -> G.GrammarState | None:
    state = G.GrammarState.create(constraint, tok.vocab_size)
    for token in tok.tokenizer(text, add_special_tokens=False).input_ids:
        if not state.accept(token, tok.table.token_bytes[token]):
            return None
    return state


def _close(state: G.GrammarState, tok) -> str:
    walk = state._closing_walk(state.matcher, 200, tok.table.single_byte_token)
    assert walk is not None
    return b"".join(tok.table.token_bytes[t] for t in walk).decode()


@pytest.mark.parametrize("prefix", [
    "", "{  ", '{"a"', '{"a": 1', '{"a": -0.5e+3', '{"a": [1, 2, {"b": null}', '{"a": "x\\n\\t', '{"a": tr',
    '{"a": {}, "b": []', '{"a": "中文"', '{"k": 0',
])
def test_json_object_prefixes_close_to_parseable_objects(tok, prefix):
    constraint = G.json_object(G.tokenizer_for(tok.tokenizer, tok.vocab_size, tok.eos_ids))
    state = _state(constraint, tok, prefix)
    assert state is not None, prefix
    text = prefix + _close(state, tok)
    assert isinstance(json.loads(text), dict), text


@pytest.mark.parametrize("bad", ["[1]", '"top-level string"', "1", '{"a" 1', '{"a": 01', "{a: 1}", '{"a": 1,}',
                                 '{"a": 1}}', '{"a": 1} extra', "{" + " " * 20, '{"a": .5'])
def test_json_object_rejects_invalid_prefixes(tok, bad):
    constraint = G.json_object(G.tokenizer_for(tok.tokenizer, tok.vocab_size, tok.eos_ids))
    assert _state(constraint, tok, bad) is None, bad


def test_schema_closing_walk_fills_required_properties(tok):
    import jsonschema

    schema = {"type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {
        "type": "string"}}, "n": {"type": "integer"}}, "required": ["name", "tags", "n"], "additionalProperties": False}
    constraint = G.json_schema(schema, G.tokenizer_for(tok.tokenizer, tok.vocab_size, tok.eos_ids))
    for prefix in ("", '{"name": "Ad', '{"name": "x", "tags": ["a"'):
        state = _state(constraint, tok, prefix)
        assert state is not None, prefix
        jsonschema.validate(json.loads(prefix + _close(state, tok)), schema)


def test_triggered_constraint_activates_only_on_a_call(tok):
    plan = structured.plan(tok, tools=[WEATHER], tool_choice="auto")
    assert plan.constraint.trigger == G.TOOL_OPEN and plan.calls
    free = _state(plan.constraint, tok, "Hello, the weather is fine")
    assert not free.active and not free.watching
    call = _state(plan.constraint, tok, "<tool_call>")
    assert call.active
    assert _state(plan.constraint, tok, '<tool_call>{"name": "nope"') is None  # unknown function: masked out


def test_parser_streams_calls_and_reassembles():
    text = ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris \\"}{", "unit": "c"}}\n</tool_call>'
            '\n<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "f"}}</tool_call>')
    parser = OutputParser(0, calls=True)
    events = []
    for i in range(0, len(text), 3):
        events += parser.feed(text[i:i + 3])
    events += parser.finish()
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert [s.name for s in starts] == ["get_weather", "get_weather"] and not any(isinstance(e, TextDelta)
                                                                                  for e in events)
    args = ["".join(e.text for e in events if isinstance(e, ToolCallArguments) and e.call_index == k)
            for k in (0, 1)]
    assert [json.loads(a) for a in args] == [{"city": 'Paris "}{', "unit": "c"}, {"city": "Oslo", "unit": "f"}]
    done = structured.parse(0, True, text, "stop", 10, [])
    assert done.finish_reason == "tool_calls" and done.text is None
    assert [c.arguments for c in done.tool_calls] == args
    plain = structured.parse(0, True, "<tool", "stop", 2, [])  # looked like a call, was not
    assert plain.text == "<tool" and not plain.tool_calls and plain.finish_reason == "stop"


@pytest.mark.parametrize("kwargs, param", [
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "array", "items": {"type": "integer"}, "uniqueItems": True}}}), "response_format.json_schema.schema"),
    (dict(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"not": {"type": "string"}}}}}}), "response_format.json_schema.schema"),
    (dict(response_format={"type": "json_schema", "json_schema": {"schema": {}}}), "response_format.json_schema.name"),
    (dict(tools=[{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"s": {"type": "string", "pattern": "^(?=a)"}}}}}], tool_choice="required"),
     "tools"),
    (dict(tool_choice="required"), "tool_choice"),
    (dict(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "other"}}), "tool_choice"),
    (dict(tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools.[0].type"),
    (dict(tools=[{"type": "function", "function": {"name": "bad name"}}]), "tools.[0].function.name"),
])
def test_bad_or_unenforceable_requests_are_400s(tok, kwargs, param):
    with pytest.raises(InvalidRequest) as err:
        structured.plan(tok, **kwargs)
    assert err.value.param == param
    if param.endswith("schema") or param == "tools":
        assert "uniqueItems" in str(err.value) or "not" in str(err.value) or "look-around" in str(err.value)


def test_tool_history_renders_in_the_documented_format(tok):
    from tuneforge.inference.prompts import normalize_messages, render_chat

    messages = normalize_messages([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"c": 21}'}])
    text = tok.tokenizer.decode(render_chat(tok.tokenizer, messages, None, [WEATHER]))
    assert '<tools>\n{"name": "get_weather"' in text  # the functions, in the system turn
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in text
    assert '<|im_start|>user\n<tool_response>\n{"c": 21}\n</tool_response>' in text
    assert text.endswith("<|im_start|>assistant\n")
    with pytest.raises(InvalidRequest):
        normalize_messages([{"role": "assistant", "tool_calls": [{"id": "x", "function": {}}]}])
