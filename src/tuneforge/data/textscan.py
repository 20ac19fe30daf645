"""Per-example text scans of the data check, written for speed (the checker runs them on every
example of files with millions of lines), each equal to a plain definition kept beside it
(``tests/data/test_fast_check.py`` compares them).

* :func:`script_of` — the first script of ``SCRIPTS`` with a character in the text.
* :func:`needs_ws_normalising` — False only when ``" ".join(t.split()) == t`` for every text.
* :func:`count_ascii_upper` — how many ``A``-``Z`` the text holds.

Non-ASCII text is scanned as UTF-8 bytes: one ``bytes.translate`` pass keeps only the few bytes a
scan looks for (a small result), where searching the wide ``str`` for each character would walk the
whole text once per character.
"""

from __future__ import annotations

import re

SCRIPTS = [("ja", re.compile(r"[\u3040-\u30ff]")), ("ko", re.compile(r"[\uac00-\ud7af]")),
           ("zh", re.compile(r"[\u4e00-\u9fff]")), ("ru", re.compile(r"[\u0400-\u04ff]")),
           ("ar", re.compile(r"[\u0600-\u06ff]")), ("latin", re.compile(r"[A-Za-z]"))]
# UTF-8 lead bytes of each range in SCRIPTS: a text without one has no character of that script
_LEAD_BYTES: list[bytes | None] = [
    b"\xe3",                      # U+3040-30FF
    b"\xea\xeb\xec\xed",          # U+AC00-D7AF
    b"\xe4\xe5\xe6\xe7\xe8\xe9",  # U+4E00-9FFF
    b"\xd0\xd1\xd2\xd3",          # U+0400-04FF
    b"\xd8\xd9\xda\xdb",          # U+0600-06FF
    None,                         # A-Z a-z: the regex finds them at once
]
_LATIN = SCRIPTS[-1][1]
# Every character str.split() splits on, but the plain space (the same table re's \s uses).
_OTHER_WS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace() and c != 32)
_ASCII_WS = "".join(c for c in _OTHER_WS if c.isascii())
# the UTF-8 of the non-ASCII ones, by lead byte (none of which is a continuation byte, so a match
# in the bytes is a whole character)
_WS_SEQS: dict[int, tuple[bytes, ...]] = {}
for _c in _OTHER_WS:
    if not _c.isascii():
        _b = _c.encode("utf-8")
        _WS_SEQS[_b[0]] = (*_WS_SEQS.get(_b[0], ()), _b)
_WS_LEADS = bytes(sorted(_WS_SEQS))
_UPPER_BYTES = bytes(range(ord("A"), ord("Z") + 1))


def _all_but(keep: bytes) -> bytes:
    """The ``delete`` argument of ``bytes.translate`` that keeps only the bytes in ``keep``."""
    return bytes(c for c in range(256) if c not in keep)


_ALL_BUT_SCRIPT_LEADS = _all_but(b"".join(lb for lb in _LEAD_BYTES if lb))
_ALL_BUT_WS = _all_but(_ASCII_WS.encode() + _WS_LEADS)


def script_of_plain(text: str) -> str:
    """The definition: the first script in SCRIPTS order that occurs anywhere in ``text``."""
    return next((name for name, rx in SCRIPTS if rx.search(text)), "other")


def script_of(text: str, utf8: bytes | None = None) -> str:
    """:func:`script_of_plain`, with each script's regex run only when the text's UTF-8 holds a
    lead byte of that script (each regex miss would scan the whole text). ``utf8``: the text
    already encoded (``"utf-8", "surrogatepass"``), if the caller has it."""
    if text.isascii():  # none of the other scripts' characters
        return "latin" if _LATIN.search(text) else "other"
    b = text.encode("utf-8", "surrogatepass") if utf8 is None else utf8
    leads = b.translate(None, _ALL_BUT_SCRIPT_LEADS)  # one pass; usually a few dozen bytes
    for (name, rx), lb in zip(SCRIPTS, _LEAD_BYTES, strict=True):
        if (lb is None or any(map(leads.__contains__, lb))) and rx.search(text):
            return name
    return "other"


def needs_ws_normalising(texts: list[str]) -> bool:
    """False only if every text equals its whitespace-normalised form ``" ".join(t.split())``:
    no whitespace but single inner spaces. (True may be a false alarm, e.g. a double space across
    two texts' boundary; the caller then normalises, which is always right.) ``t.split()`` would
    allocate every word: this searches for the other whitespace characters instead (ASCII text: at
    memchr speed; other text: in its UTF-8, see the module notes)."""
    for t in texts:
        if t.startswith(" ") or t.endswith(" "):
            return True
    joined = "".join(texts)
    if joined.isascii():
        return "  " in joined or any(map(joined.__contains__, _ASCII_WS))
    b = joined.encode("utf-8", "surrogatepass")
    if b"  " in b:
        return True
    found = b.translate(None, _ALL_BUT_WS)
    if not found:
        return False
    if found.translate(None, _WS_LEADS):  # an ASCII whitespace character other than the space
        return True
    return any(seq in b for lead, seqs in _WS_SEQS.items() if lead in found for seq in seqs)


def count_ascii_upper(text: str, utf8: bytes | None = None) -> int:
    """``len(re.findall("[A-Z]", text))``: bytes 0x41-0x5A only ever encode A-Z in UTF-8.
    ``utf8``: the text already encoded (``"utf-8", "surrogatepass"``), if the caller has it."""
    b = text.encode("utf-8", "surrogatepass") if utf8 is None else utf8
    return len(b) - len(b.translate(None, _UPPER_BYTES))
