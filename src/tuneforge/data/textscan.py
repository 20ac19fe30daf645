"""Per-example text scans of the data check, written for speed (the checker runs them on every
example of files with millions of lines), each equal to a plain definition kept beside it
(``tests/data/test_fast_check.py`` compares them).

* :func:`script_of` — the first script of ``SCRIPTS`` with a character in the text.
* :func:`needs_ws_normalising` — False only when ``" ".join(t.split()) == t`` for every text.
* :func:`count_ascii_upper` — how many ``A``-``Z`` the text holds.
"""

from __future__ import annotations

import re

SCRIPTS = [("ja", re.compile(r"[\u3040-\u30ff]")), ("ko", re.compile(r"[\uac00-\ud7af]")),
           ("zh", re.compile(r"[\u4e00-\u9fff]")), ("ru", re.compile(r"[\u0400-\u04ff]")),
           ("ar", re.compile(r"[\u0600-\u06ff]")), ("latin", re.compile(r"[A-Za-z]"))]
# UTF-8 lead bytes of each range in SCRIPTS: a text without one has no character of that script
_LEAD_BYTES: list[tuple[bytes, ...] | None] = [
    (b"\xe3",),                                           # U+3040-30FF
    (b"\xea", b"\xeb", b"\xec", b"\xed"),                    # U+AC00-D7AF
    (b"\xe4", b"\xe5", b"\xe6", b"\xe7", b"\xe8", b"\xe9"),      # U+4E00-9FFF
    (b"\xd0", b"\xd1", b"\xd2", b"\xd3"),                    # U+0400-04FF
    (b"\xd8", b"\xd9", b"\xda", b"\xdb"),                    # U+0600-06FF
    None,                                                # A-Z a-z: the regex finds them at once
]
# Every character str.split() splits on, but the plain space (the same table re's \s uses).
_OTHER_WS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace() and c != 32)
_UPPER_BYTES = bytes(range(ord("A"), ord("Z") + 1))


def script_of_plain(text: str) -> str:
    """The definition: the first script in SCRIPTS order that occurs anywhere in ``text``."""
    return next((name for name, rx in SCRIPTS if rx.search(text)), "other")


def script_of(text: str) -> str:
    """:func:`script_of_plain`, with each script's regex run only when the text's UTF-8 holds a
    lead byte of that script (a byte search at C speed; most texts have one or two scripts, and
    each regex miss would scan the whole text)."""
    b = text.encode("utf-8", "surrogatepass")
    for (name, rx), leads in zip(SCRIPTS, _LEAD_BYTES, strict=True):
        if (leads is None or any(map(b.__contains__, leads))) and rx.search(text):
            return name
    return "other"


def needs_ws_normalising(texts: list[str]) -> bool:
    """False only if every text equals its whitespace-normalised form ``" ".join(t.split())``:
    no whitespace but single inner spaces. (True may be a false alarm, e.g. a double space across
    two texts' boundary; the caller then normalises, which is always right.) It searches for each
    other whitespace character at memchr speed; ``t.split()`` would allocate every word."""
    for t in texts:
        if t[:1] == " " or t[-1:] == " ":
            return True
    joined = "".join(texts)
    return "  " in joined or any(map(joined.__contains__, _OTHER_WS))


def count_ascii_upper(text: str) -> int:
    """``len(re.findall("[A-Z]", text))``: bytes 0x41-0x5A only ever encode A-Z in UTF-8."""
    b = text.encode("utf-8", "surrogatepass")
    return len(b) - len(b.translate(None, _UPPER_BYTES))
