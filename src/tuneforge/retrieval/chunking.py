"""Token-bounded chunking that keeps document structure where it is cheap.

Sections from the data toolkit (paragraphs, headings, table rows, pages) are packed whole into a
chunk while they fit; a section longer than a chunk is cut at token boundaries. Each new chunk
starts with up to ``overlap`` tokens carried over from the end of the previous one, so an answer
that straddles a boundary is whole in at least one chunk. Tokens are ``cl100k_base`` tokens, the
unit OpenAI's ``max_chunk_size_tokens`` is expressed in.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from tuneforge.errors import InvalidRequest

AUTO = {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}
MIN_TOKENS, MAX_TOKENS = 100, 4096

_encoding = None
_encoding_lock = threading.Lock()


def encoding():
    """The offline cl100k_base encoding, built once (about 0.5 s)."""
    global _encoding
    with _encoding_lock:
        if _encoding is None:
            from tuneforge.data.tokens import get_openai_encoding

            _encoding = get_openai_encoding("cl100k_base")
        return _encoding


# BPE merging grows faster than linearly with the length of one pre-tokenized "word" (1.6 MB of letters
# without a space: 8.6 s in one piece); runs longer than this are encoded in pieces of this length instead.
MAX_RUN_CHARS = 256
_LONG_RUN = re.compile(rf"(\S{{{MAX_RUN_CHARS}}})")


def encode(text: str, enc=None) -> list[int]:
    """cl100k tokens of ``text`` in time linear in its length (exact for text with normal word lengths)."""
    enc = enc or encoding()
    if len(text) <= MAX_RUN_CHARS or not _LONG_RUN.search(text):
        return enc.encode_ordinary(text)
    tokens: list[int] = []
    for piece in _LONG_RUN.split(text):
        if piece:
            tokens += enc.encode_ordinary(piece)
    return tokens


def count_tokens(text: str) -> int:
    return len(encode(text))


def parse_strategy(value: dict | None, *, param: str = "chunking_strategy") -> dict:
    """Validate a request's chunking strategy; returns the stored form ``{"type":"static","static":{...}}``."""
    if value is None:
        return {"type": "static", "static": dict(AUTO)}
    if not isinstance(value, dict) or value.get("type") not in ("auto", "static"):
        raise InvalidRequest("chunking_strategy.type must be 'auto' or 'static'.", param=f"{param}.type")
    if value["type"] == "auto":
        return {"type": "static", "static": dict(AUTO)}
    static = value.get("static")
    if not isinstance(static, dict):
        raise InvalidRequest("A static chunking strategy needs 'static': {max_chunk_size_tokens, "
                             "chunk_overlap_tokens}.", param=f"{param}.static")
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_TOKENS <= size <= MAX_TOKENS:
        raise InvalidRequest(f"max_chunk_size_tokens must be an integer between {MIN_TOKENS} and {MAX_TOKENS}.",
                             param=f"{param}.static.max_chunk_size_tokens")
    if not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0 or overlap > size // 2:
        raise InvalidRequest("chunk_overlap_tokens must be a non-negative integer no more than half of "
                             "max_chunk_size_tokens.", param=f"{param}.static.chunk_overlap_tokens")
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


@dataclass
class Chunk:
    text: str
    tokens: int
    position: int
    heading: str | None = None
    page: int | None = None
    kinds: list[str] = field(default_factory=list)

    def meta(self) -> dict:
        return {"heading": self.heading, "page": self.page, "kind": self.kinds[0] if self.kinds else None}


def chunk_sections(sections, *, max_tokens: int, overlap: int, check=None) -> list[Chunk]:
    """Pack sections (``tuneforge.data.Section``) into chunks of at most ``max_tokens`` tokens.

    ``check()``, when given, is called between sections (it raises to stop: a file's time budget)."""
    enc = encoding()
    chunks: list[Chunk] = []
    cur: list[int] = []  # tokens of the chunk being built (starts with the carried-over overlap)
    fresh: list[str] = []  # kinds of the sections that added new text to it
    where: dict = {"heading": None, "page": None}

    def emit() -> None:
        nonlocal cur
        # Cuts between tokens can split a multi-byte character (Chinese): drop the partial bytes.
        text = enc.decode_bytes(cur).decode("utf-8", errors="ignore").strip()
        if text:
            chunks.append(Chunk(text, len(cur), len(chunks), where["heading"], where["page"], list(fresh)))
        cur = cur[-overlap:] if overlap else []
        fresh.clear()

    sep = enc.encode_ordinary("\n\n")
    for section in sections:
        if check is not None:
            check()
        text = section.text.strip()
        if not text:
            continue
        toks = encode(text, enc)
        # A section that does not fit starts a new chunk rather than being cut, unless it would be
        # cut anyway (longer than a chunk) or the chunk so far holds only headings (keep them with
        # the text they head).
        if (fresh and len(cur) + len(sep) + len(toks) > max_tokens and len(toks) <= max_tokens - overlap
                and any(k != "heading" for k in fresh)):
            emit()
        if not fresh:  # the chunk's first new text decides where it is "from"
            where["heading"] = section.heading or (text if section.kind == "heading" else where["heading"])
            where["page"] = section.page if section.page is not None else where["page"]
        if cur:
            cur = cur + sep
        start = 0  # an index, not slicing toks: re-copying the rest per chunk is quadratic on huge sections
        while len(cur) + len(toks) - start > max_tokens:  # a section longer than a chunk: cut it
            room = max_tokens - len(cur)
            cur, start = cur + toks[start:start + room], start + room
            fresh.append(section.kind)
            emit()
            if check is not None:
                check()
        cur = cur + toks[start:]
        fresh.append(section.kind)
    if fresh:
        emit()
    return chunks
