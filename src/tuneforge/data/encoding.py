"""Text encoding sniffing: UTF-8 (with or without BOM), UTF-16 with BOM, GB18030/GBK, and a
charset-normalizer guess for the rest.

Chinese CSV files saved by Excel are usually GBK; GB18030 is a strict superset of GBK and GB2312,
so any of those is decoded as ``gb18030``.
"""

from __future__ import annotations

import codecs
import os
import re

SNIFF_BYTES = 1 << 16
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
_CHINESE_FAMILY = {"gb2312", "gbk", "gb18030", "hz", "big5", "big5hkscs", "cp936", "cp950"}


def _decodes(data: bytes, encoding: str) -> str | None:
    """Decode a head sample; a multibyte character cut at the end of the sample is fine."""
    try:
        return codecs.getincrementaldecoder(encoding)().decode(data, final=False)
    except UnicodeDecodeError:
        return None


def sniff_bytes(data: bytes) -> str:
    """Return a Python codec name for ``data`` (a head sample of a file)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes(data, "utf-8") is not None:
        return "utf-8"
    text = _decodes(data, "gb18030")
    if text is not None:
        non_ascii = [c for c in text if ord(c) > 127]
        if non_ascii and sum(1 for c in non_ascii if _CJK.match(c)) >= 0.3 * len(non_ascii):
            return "gb18030"
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
    except Exception:  # pragma: no cover - charset_normalizer is a dependency
        best = None
    if best is not None and best.encoding:
        enc = best.encoding.lower().replace("-", "").replace("_", "")
        if enc in {e.replace("-", "") for e in _CHINESE_FAMILY} and enc not in {"big5", "big5hkscs", "cp950"}:
            return "gb18030"
        return best.encoding
    return "latin-1"


def sniff_encoding(path: str | os.PathLike[str]) -> str:
    """Sniff the encoding of a text file from its first 64 KiB."""
    with open(path, "rb") as f:
        return sniff_bytes(f.read(SNIFF_BYTES))


def read_text(path: str | os.PathLike[str], encoding: str | None = None) -> str:
    """Read a whole (small) text file with a sniffed encoding; undecodable bytes are replaced."""
    enc = encoding or sniff_encoding(path)
    with open(path, encoding=enc, errors="replace", newline="") as f:
        return f.read()
