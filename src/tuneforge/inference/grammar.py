"""Constrained decoding with llguidance: JSON mode, strict JSON schemas and tool calls, per row of a batch.

Why llguidance (over xgrammar and outlines-core): a single abi3 wheel with no dependencies (xgrammar
pulls triton and an unpinned torch), it compiles JSON schemas and Lark grammars without a per-schema
preprocessing pass over the vocabulary (~50 µs per mask on SmolLM2's 49k tokens, on CPU), and it
reports the schema keywords it cannot enforce, which become 400s naming them.

A row carries a ``GrammarState``: before each sampled token the allowed-token bitmask is applied to
the row's logits; the sampled token is then fed to the matcher. Two things the engine adds on top:

- **Budget closing.** When the remaining ``max_tokens`` get as small as the shortest way to finish the
  structure (found by a greedy walk on a copy of the matcher: forced bytes first, then closing bytes
  such as ``}`` ``]`` ``"``), the row emits exactly that walk, so the output still parses.
- **Triggered constraints** (``tool_choice: auto``): the row decodes freely while its text could
  still begin with the trigger (``<tool_call>``); once it does, the tokens so far are replayed into the
  matcher and the rest is constrained; if the text goes elsewhere, the row stays free.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field

import numpy as np

# JSON whitespace, but never long runs: a weak model would otherwise pad forever inside the grammar.
_WHITESPACE = r"[ \t\r\n]{0,12}"
_CLOSE_WINDOW = 64  # remaining tokens below which the closing walk is computed each step
_RECHECK = 16  # steps between closing walks while the budget is far from the walk's length
# Preferred bytes of the closing walk, most closing first: outside JSON strings, and inside one.
_CLOSERS = b'}]0":ntf[{<a'
_STRING_CLOSERS = b'"a0'

_tokenizers: dict[tuple, object] = {}
_lock = threading.Lock()


class UnsupportedSchema(ValueError):
    """The grammar engine cannot enforce part of a schema; the message names the keyword."""


def tokenizer_for(tokenizer, vocab_size: int, eos_ids) -> object:
    """llguidance's view of a Hugging Face tokenizer (built once per tokenizer: ~0.5 s)."""
    import llguidance.hf

    key = (getattr(tokenizer, "name_or_path", ""), id(tokenizer), vocab_size)
    with _lock:
        if key not in _tokenizers:
            _tokenizers[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size,
                                                            eos_token=sorted(eos_ids))
        return _tokenizers[key]


def _check(grammar: str, lltok) -> str:
    from llguidance import LLMatcher

    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar, lltok)
    if is_error:
        raise UnsupportedSchema(_explain(messages[0] if messages else "invalid grammar"))
    return grammar


def _explain(message: str) -> str:
    message = message.strip()
    if "Unimplemented keys" in message:
        return f"the schema uses keywords that cannot be enforced during generation ({message})"
    return f"the schema cannot be enforced during generation: {message.splitlines()[0]}" + (
        f" ({message.splitlines()[-1]})" if len(message.splitlines()) > 1 else "")


def _schema_grammar(schema: dict) -> str:
    from llguidance import LLMatcher

    try:
        return LLMatcher.grammar_from_json_schema(schema, overrides={"whitespace_pattern": _WHITESPACE})
    except ValueError as exc:
        raise UnsupportedSchema(f"the schema is not valid: {exc}") from None


# -- what a request asks for -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Constraint:
    """A compiled grammar and the llguidance tokenizer it runs on; ``trigger``: constrain only once the
    output starts with this text (free text otherwise)."""

    grammar: str
    tokenizer: object
    trigger: str | None = None


def json_object(lltok) -> Constraint:
    return Constraint(_check(_schema_grammar({"type": "object"}), lltok), lltok)


def json_schema(schema: dict, lltok) -> Constraint:
    return Constraint(_check(_schema_grammar(schema), lltok), lltok)


TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"


def tool_calls(functions: list[dict], lltok, *, parallel: bool, trigger: bool, answer: dict | None = None
               ) -> Constraint:
    """Calls written as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (Hermes
    format), arguments valid against each function's ``parameters`` schema; ``parallel``: one or more.
    ``answer``: a JSON schema the answer may follow instead of calling (``tool_choice: auto`` with a
    structured answer); ``trigger``: free text unless the answer starts with a call."""
    from llguidance import LLMatcher

    options = []
    for fn in functions:
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        options.append({"type": "object", "properties": {"name": {"const": fn["name"]}, "arguments": params},
                        "required": ["name", "arguments"], "additionalProperties": False})
    call = options[0] if len(options) == 1 else {"anyOf": options}
    more = " (WS? call_block)*" if parallel else ""
    start = "start: calls | answer\n" if answer is not None else "start: calls\n"
    lark = (start + f"calls: WS? call_block{more} WS?\n"
            f'call_block: "{TOOL_OPEN}" WS? call WS? "{TOOL_CLOSE}"\n'
            f"call: %json {_with_whitespace(call)}\n"
            "WS: /[ \\t\\r\\n]{1,4}/\n")
    if answer is not None:
        lark += f"answer: %json {_with_whitespace(answer)}\n"
    try:
        grammar = LLMatcher.grammar_from_lark(lark)
    except ValueError as exc:
        raise UnsupportedSchema(f"the function schemas are not valid: {exc}") from None
    return Constraint(_check(grammar, lltok), lltok, TOOL_OPEN if trigger else None)


def _with_whitespace(schema: dict) -> str:
    """The schema as JSON with the bounded whitespace option llguidance reads from ``x-guidance``."""
    return json.dumps({**schema, "x-guidance": {"whitespace_pattern": _WHITESPACE}})


# -- one row's state -------------------------------------------------------------------------------


@dataclass
class GrammarState:
    constraint: Constraint
    vocab_size: int
    matcher: object | None = None
    watching: bool = False  # triggered constraint not (yet) active
    seen: list[int] = field(default_factory=list)  # tokens while watching (replayed on activation)
    text: bytes = b""
    closing: list[int] = field(default_factory=list)
    in_string: bool = False  # inside a JSON string (the closing walk closes it first)
    escape: bool = False
    fallback: list[int] | None = None  # this step's closing walk, used if the sampled token cannot close
    horizon: int = 0  # remaining budget below which the walk is computed every step
    since_check: int = _RECHECK  # steps since the last walk (the first step computes one)

    @classmethod
    def create(cls, constraint: Constraint, vocab_size: int) -> GrammarState:
        state = cls(constraint, vocab_size)
        if constraint.trigger:
            state.watching = True
        else:
            state.matcher = state._new_matcher()
        return state

    def _new_matcher(self):
        from llguidance import LLMatcher

        return LLMatcher(self.constraint.tokenizer, self.constraint.grammar, log_level=0)

    @property
    def active(self) -> bool:
        return self.matcher is not None

    @property
    def complete(self) -> bool:
        """The constrained output is a whole match of the grammar."""
        return self.active and self.matcher.is_accepting()

    def forced(self, remaining: int, single_byte: dict[int, int]) -> int | None:
        """A token the row must emit now (closing the structure within budget), or None to sample."""
        self.fallback = None
        if not self.active:
            return None
        if self.closing:
            return self.closing.pop(0)
        self.since_check += 1
        near = remaining <= max(_CLOSE_WINDOW, self.horizon)
        if (not near and self.since_check < _RECHECK) or self.matcher.is_accepting():
            return None
        self.since_check = 0
        walk = self._closing_walk(self.matcher, remaining, single_byte)
        # Watch every step once the budget gets near twice the walk (a token rarely adds more than a
        # couple of closers); further away, look again every few steps as the structure deepens.
        self.horizon = 2 * len(walk) + 16 if walk is not None else 0
        if not near and (walk is None or len(walk) < remaining - 1):
            return None
        if walk is not None and len(walk) >= remaining:
            self.closing = walk
            return self.closing.pop(0)
        self.fallback = walk
        return None

    def settle(self, token: int, remaining: int, single_byte: dict[int, int]) -> int:
        """The sampled ``token``, unless the structure could no longer be closed within the budget after it:
        then the first token of the closing walk (which fits, or it would have been forced)."""
        if self.fallback is None or not self.active:
            return token
        trial = self.matcher.deep_copy()
        if trial.consume_token(token) and not trial.is_accepting():
            walk = self._closing_walk(trial, remaining - 1, single_byte,
                                      _scan((self.in_string, self.escape), self.constraint_bytes(token)))
            if walk is None or len(walk) > remaining - 1:
                self.closing = list(self.fallback)
                return self.closing.pop(0)
        return token

    def _closing_walk(self, matcher, limit: int, single_byte: dict[int, int],
                      scan: tuple[bool, bool] | None = None) -> list[int] | None:
        m = matcher.deep_copy()
        walk: list[int] = []
        scan = scan or (self.in_string, self.escape)
        while not m.is_accepting():
            if len(walk) > limit or m.is_error():
                return walk if len(walk) > limit else None
            forced = m.compute_ff_tokens()
            if forced:
                walk.extend(forced)
                m.consume_tokens(forced)
                for t in forced:
                    scan = _scan(scan, self.constraint_bytes(t))
                continue
            allowed = self._allowed(m)
            order = _STRING_CLOSERS if scan[0] else _CLOSERS
            token = next((single_byte[b] for b in order if b in single_byte and allowed[single_byte[b]]), None)
            if token is None:
                ids = np.flatnonzero(allowed)
                if not len(ids):
                    return None
                token = int(ids[0])
            walk.append(token)
            m.consume_token(token)
            scan = _scan(scan, self.constraint_bytes(token))
        return walk

    def constraint_bytes(self, token: int) -> bytes:
        return self.constraint.tokenizer.decode_bytes([token])

    def _allowed(self, matcher) -> np.ndarray:
        bits = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
        return bits[: self.vocab_size].astype(bool)

    def mask(self, logits):
        """``logits`` (a torch tensor ``[V]``) with every token the grammar forbids set to -inf (unchanged
        while inactive). torch is imported here so request-side code can use this module without it."""
        if not self.active:
            return logits
        import torch

        allowed = torch.from_numpy(self._allowed(self.matcher))
        if allowed.shape[0] < logits.shape[0]:
            allowed = torch.nn.functional.pad(allowed, (0, logits.shape[0] - allowed.shape[0]))
        return logits.masked_fill(~allowed, -math.inf)

    def accept(self, token: int, token_bytes: bytes) -> bool:
        """Feed the chosen token; False if the grammar rejects it (never for masked sampling)."""
        if self.active:
            self.in_string, self.escape = _scan((self.in_string, self.escape), token_bytes)
            return bool(self.matcher.consume_token(token))
        if not self.watching:
            return True
        self.seen.append(token)
        self.text += token_bytes
        trigger = self.constraint.trigger.encode()
        head = self.text.lstrip()
        if head.startswith(trigger):
            self.watching = False
            self.matcher = self._new_matcher()
            self.matcher.consume_tokens(self.seen)  # an error state here leaves the row unconstrained
            self.in_string, self.escape = _scan((False, False), self.text)
            if self.matcher.is_error():
                self.matcher = None
        elif not trigger.startswith(head):
            self.watching = False  # plain text: the model chose not to call a tool
        return True


def _scan(state: tuple[bool, bool], data: bytes) -> tuple[bool, bool]:
    """(inside a JSON string, after a backslash) once ``data`` follows."""
    in_string, escape = state
    for b in data:
        if escape:
            escape = False
        elif in_string and b == 0x5C:
            escape = True
        elif b == 0x22:
            in_string = not in_string
    return in_string, escape
