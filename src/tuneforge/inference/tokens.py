"""Token-level text helpers: the byte string of every token, incremental detokenizing, stop strings.

The JSON-constrained sampler and ``logprobs.bytes`` need each token's exact bytes, which a plain
``decode([id])`` loses for byte-level BPE tokens that hold part of a UTF-8 character.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import torch


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the alphabet of byte-level BPE vocabularies)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}
_SP_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _decoder_kind(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return "other"
    try:
        decoder = json.loads(backend.to_str()).get("decoder") or {}
    except (ValueError, AttributeError):
        return "other"
    text = json.dumps(decoder)
    if "ByteLevel" in text:
        return "bytelevel"
    if "ByteFallback" in text or "Metaspace" in text or "\u2581" in text:
        return "sentencepiece"
    return "other"


@dataclass
class TokenTable:
    """Bytes of each token id (``b""`` for special/control tokens) plus lookups the samplers need."""

    token_bytes: list[bytes]
    special: set[int]
    first_byte: torch.Tensor  # [V] int16: first byte of the token, -1 for empty/special tokens
    single_byte_token: dict[int, int] = field(default_factory=dict)  # byte value -> a token of exactly it

    @property
    def size(self) -> int:
        return len(self.token_bytes)


def build_token_table(tokenizer, vocab_size: int) -> TokenTable:
    """``vocab_size`` is the model's (often padded) output size; ids past the tokenizer are special."""
    kind = _decoder_kind(tokenizer)
    special = {i for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items() if tok.special}
    special.update(i for i in (tokenizer.all_special_ids or []) if i is not None)
    tokens = tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), vocab_size))))
    out: list[bytes] = []
    for i, tok in enumerate(tokens):
        if i in special or tok is None:
            out.append(b"")
            continue
        if kind == "bytelevel" and all(c in _BYTE_DECODER for c in tok):
            out.append(bytes(_BYTE_DECODER[c] for c in tok))
        elif kind == "sentencepiece":
            m = _SP_BYTE.match(tok)
            out.append(bytes([int(m.group(1), 16)]) if m else tok.replace("\u2581", " ").encode("utf-8"))
        else:
            out.append(tokenizer.decode([i], skip_special_tokens=False).encode("utf-8"))
    out.extend(b"" for _ in range(vocab_size - len(out)))
    special.update(range(len(tokens), vocab_size))
    first = torch.tensor([b[0] if b else -1 for b in out], dtype=torch.int16)
    singles: dict[int, int] = {}
    for i, b in enumerate(out):
        if len(b) == 1 and b[0] not in singles:
            singles[b[0]] = i
    return TokenTable(out, special, first, singles)


class Detokenizer:
    """Incremental decode (the prefix/read offset trick): new text per token without re-decoding it all,
    and without emitting half a UTF-8 character."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0
        self._read = 0

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        decode = self.tokenizer.decode
        prefix_text = decode(self.ids[self._prefix:self._read], skip_special_tokens=True)
        new_text = decode(self.ids[self._prefix:], skip_special_tokens=True)
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text):]
            self._prefix, self._read = self._read, len(self.ids)
            self.text += delta
            return delta
        return ""

    def flush(self) -> str:
        """At the end: whatever is still held back (a trailing partial character decodes to U+FFFD)."""
        rest = self.tokenizer.decode(self.ids[self._prefix:], skip_special_tokens=True)
        done = self.tokenizer.decode(self.ids[self._prefix:self._read], skip_special_tokens=True)
        delta = rest[len(done):]
        self.text += delta
        self._prefix = self._read = len(self.ids)
        return delta


class StopText:
    """Accumulates generated text and releases only what can no longer turn into a stop string.

    ``push`` returns (text safe to emit, stopped). Once a stop string appears, the text before it is
    released and the stop string itself never is.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.text = ""
        self.released = 0

    def push(self, delta: str, final: bool = False) -> tuple[str, bool]:
        self.text += delta
        if self.stops:
            start = max(0, self.released - max(len(s) for s in self.stops))
            hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
            if hits:
                cut = min(hits)
                self.text = self.text[:cut]
                out = self.text[self.released:]
                self.released = len(self.text)
                return out, True
        end = len(self.text)
        if not final:
            end -= self._holdback()
        end = max(end, self.released)
        out = self.text[self.released:end]
        self.released = end
        return out, False

    def _holdback(self) -> int:
        """Length of the longest suffix of the text that is a proper prefix of a stop string."""
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.text)), best, -1):
                if self.text.endswith(stop[:k]):
                    best = k
                    break
        return best
