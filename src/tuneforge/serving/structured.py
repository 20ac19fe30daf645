"""Structured outputs and function calling on local models: what a request asks for becomes a grammar
constraint (``inference.grammar``), and what the model writes becomes text or tool calls.

Output format of calls (documented, Hermes style; SmolLM2's template has no tool format of its own):
one ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` block per call. ``tool_choice``:
``none`` (tools not offered), ``auto`` (the model chooses; once its answer starts with ``<tool_call>``
the rest is constrained), ``required`` and a named function (the whole answer is constrained, so every
call parses and its arguments validate against the function's ``parameters`` schema).
``response_format`` ``json_object`` / ``json_schema`` constrain the text answer the same way (with or
without ``strict``: the constraint is always exact); a schema keyword the engine cannot enforce is a 400.

``OutputParser`` turns the growing text of one choice into typed events (``TextDelta``, ``ToolCallStart``,
``ToolCallArguments``) for streaming, and its final state into a ``ChoiceDone`` for whole answers, so
streamed deltas always reassemble to the non-streamed result.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tuneforge.errors import InvalidRequest
from tuneforge.ids import new_id
from tuneforge.inference import grammar as G
from tuneforge.inference.grammar import TOOL_OPEN, Constraint, UnsupportedSchema

if TYPE_CHECKING:
    from tuneforge.inference.sampling import TokenLogprob

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_CALL_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*')


@dataclass(frozen=True)
class Plan:
    """How one request is decoded and read back."""

    constraint: Constraint | None = None
    tools: list[dict] | None = None  # offered in the prompt
    calls: bool = False  # the answer may hold tool calls
    structured: bool = False  # the answer is constrained JSON or calls (stop strings could cut it)


def _functions(tools: list | None, functions: list | None) -> list[dict]:
    out = []
    if functions:  # deprecated 'functions' = tools of type function
        tools = [{"type": "function", "function": f} for f in functions]
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise InvalidRequest(f"Tools of type {kind!r} are not supported by this server (only 'function').",
                                 param=f"tools.[{i}].type", code="unsupported_parameter")
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not _NAME.match(fn["name"]):
            raise InvalidRequest(f"Invalid 'tools[{i}].function.name': names are 1-64 letters, digits, '_' or '-'.",
                                 param=f"tools.[{i}].function.name")
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type", "object") != "object"):
            raise InvalidRequest(f"Invalid 'tools[{i}].function.parameters': must be a JSON schema of an object.",
                                 param=f"tools.[{i}].function.parameters")
        out.append(fn)
    names = [f["name"] for f in out]
    if len(set(names)) != len(names):
        raise InvalidRequest("Function names in 'tools' must be unique.", param="tools")
    return out


def _choice(tool_choice, function_call, functions: list[dict]) -> tuple[str, str | None]:
    """("none" | "auto" | "required", the named function or None)."""
    param = "tool_choice"
    if tool_choice is None and function_call is not None:
        param = "function_call"
        tool_choice = function_call if isinstance(function_call, str) else \
            {"type": "function", "function": function_call}
    if tool_choice is None:
        return ("auto" if functions else "none"), None
    if tool_choice != "none" and not functions:
        raise InvalidRequest(f"'{param}' is only allowed when 'tools' are specified.", param=param)
    if tool_choice in ("none", "auto", "required"):
        return tool_choice, None
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        if name not in {f["name"] for f in functions}:
            raise InvalidRequest(f"Invalid '{param}': no function named {name!r} in 'tools'.", param=param)
        return "required", name
    raise InvalidRequest(f"Invalid '{param}': expected 'none', 'auto', 'required' or a function.", param=param,
                         code="unsupported_parameter" if isinstance(tool_choice, dict) else None)


def _schema(response_format: dict | None) -> dict | None:
    """The JSON schema the text answer must match: ``{"type": "object"}`` for json_object; None for text."""
    if response_format is None:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not _NAME.match(spec["name"]):
            raise InvalidRequest("Invalid 'response_format.json_schema': a 'name' of 1-64 letters, digits, '_' or "
                                 "'-' is required.", param="response_format.json_schema.name")
        schema = spec.get("schema", {})
        if not isinstance(schema, dict):
            raise InvalidRequest("Invalid 'response_format.json_schema.schema': must be a JSON schema object.",
                                 param="response_format.json_schema.schema")
        return schema
    raise InvalidRequest(f"Invalid 'response_format.type': {kind!r}.", param="response_format.type")


def plan(info, *, tools=None, tool_choice=None, parallel_tool_calls: bool | None = None,
         response_format: dict | None = None, functions=None, function_call=None) -> Plan:
    """Check the structured-output and tool parameters of a request against a model (400s) and compile
    its constraint. ``info``: the engine's ``BaseInfo`` of the model."""
    fns = _functions(tools, functions)
    mode, named = _choice(tool_choice, function_call, fns)
    schema = _schema(response_format)
    if mode == "none" and schema is None:
        return Plan()
    lltok = G.tokenizer_for(info.tokenizer, info.vocab_size, info.eos_ids)
    try:
        if mode == "none":
            constraint = G.json_schema(schema, lltok)
            return Plan(constraint, None, False, True)
        offered = [f for f in fns if named is None or f["name"] == named]
        parallel = parallel_tool_calls is not False
        if mode == "required":
            return Plan(G.tool_calls(offered, lltok, parallel=parallel, trigger=False), fns, True, True)
        return Plan(G.tool_calls(offered, lltok, parallel=parallel, trigger=schema is None, answer=schema),
                    fns, True, schema is not None)
    except UnsupportedSchema as exc:
        param = "response_format.json_schema.schema" if mode == "none" else "tools"
        raise InvalidRequest(f"Unsupported schema: {exc}.", param=param, code="unsupported_parameter") from None


# -- reading the answer back -----------------------------------------------------------------------


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text exactly as generated (streamed deltas concatenate to it)

    def to_dict(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class TextDelta:
    index: int
    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class ToolCallStart:
    index: int
    call_index: int
    id: str
    name: str


@dataclass
class ToolCallArguments:
    index: int
    call_index: int
    text: str


@dataclass
class ChoiceDone:
    """One finished choice: ``text`` (None when it made calls), ``tool_calls``, ``finish_reason``
    ("stop" | "length" | "tool_calls")."""

    index: int
    finish_reason: str
    text: str | None
    tool_calls: list[ToolCall]
    completion_tokens: int
    logprobs: list[TokenLogprob]


class OutputParser:
    """Incremental reader of one choice's text: plain text, or ``<tool_call>`` blocks once the answer
    starts with one (only checked when the request allows calls)."""

    def __init__(self, index: int, calls: bool):
        self.index = index
        self.mode = "undecided" if calls else "text"
        self.buffer = ""  # text not yet turned into events
        self.calls: list[ToolCall] = []
        self._depth: list[str] | None = None  # open brackets of the arguments being streamed
        self._in_string = self._escape = False

    def feed(self, text: str) -> list:
        self.buffer += text
        events: list = []
        if self.mode == "undecided":
            head = self.buffer.lstrip()
            if head.startswith(TOOL_OPEN):
                self.mode = "calls"
            elif not TOOL_OPEN.startswith(head):
                self.mode = "text"
        if self.mode == "text" and self.buffer:
            events.append(TextDelta(self.index, self.buffer))
            self.buffer = ""
        elif self.mode == "calls":
            self._calls(events)
        return events

    def _calls(self, events: list) -> None:
        while True:
            if self._depth is None:  # between calls: wait for a complete head up to the arguments
                start = self.buffer.find(TOOL_OPEN)
                if start < 0:
                    return
                head = _CALL_HEAD.match(self.buffer, start + len(TOOL_OPEN))
                if head is None or head.end() == len(self.buffer):  # more whitespace may follow
                    return
                name = json.loads(f'"{head.group(1)}"')
                self.calls.append(ToolCall(new_id("call_"), name, ""))
                events.append(ToolCallStart(self.index, len(self.calls) - 1, self.calls[-1].id, name))
                self.buffer = self.buffer[head.end():]
                self._depth = []
            taken = self._arguments()
            if taken:
                self.calls[-1].arguments += taken
                events.append(ToolCallArguments(self.index, len(self.calls) - 1, taken))
            if self._depth is not None:
                return

    def _arguments(self) -> str:
        """Consume the arguments' JSON from the buffer up to its end (bracket depth back to zero)."""
        depth = self._depth
        for i, ch in enumerate(self.buffer):
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif ch == "\\":
                    self._escape = True
                elif ch == '"':
                    self._in_string = False
            elif ch == '"':
                self._in_string = True
            elif ch in "{[":
                depth.append(ch)
            elif ch in "}]":
                depth.pop()
                if not depth:
                    taken, self.buffer, self._depth = self.buffer[: i + 1], self.buffer[i + 1:], None
                    return taken
            elif not depth and not ch.isspace():
                raise ValueError("arguments must be a JSON object")  # the grammar rules this out
        taken, self.buffer = self.buffer, ""
        return taken

    def finish(self) -> list:
        """Events for text held back at the end (an answer that only looked like the start of a call)."""
        if self.mode == "undecided":
            self.mode = "text"
            return self.feed("")
        return []

    def done(self, reason: str, full_text: str, completion_tokens: int, logprobs) -> ChoiceDone:
        if self.mode == "calls" and self.calls:
            complete = self._depth is None
            return ChoiceDone(self.index, "tool_calls" if complete and reason == "stop" else reason, None,
                              self.calls, completion_tokens, logprobs)
        return ChoiceDone(self.index, reason, full_text, [], completion_tokens, logprobs)


def parse(index: int, calls: bool, text: str, reason: str, completion_tokens: int, logprobs) -> ChoiceDone:
    """A whole answer read back (the same reading as the streamed one)."""
    parser = OutputParser(index, calls)
    try:
        parser.feed(text)
    except ValueError:
        return ChoiceDone(index, reason, text, [], completion_tokens, logprobs)
    parser.finish()
    return parser.done(reason, text, completion_tokens, logprobs)

