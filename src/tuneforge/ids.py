"""OpenAI-style ids that sort by creation time, so cursor pagination can order by id alone."""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghjkmnpqrstvwxyz"  # ascending in ASCII
_lock = threading.Lock()
_last = (0, 0)


def _encode(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, rem = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """``prefix`` + 9 chars of millisecond time + 13 chars that increase within the same millisecond."""
    global _last
    with _lock:
        now = int(time.time() * 1000)
        last_ms, last_rand = _last
        if now <= last_ms:  # same millisecond (or clock went back): stay monotonic
            now, rand = last_ms, last_rand + 1
        else:
            rand = secrets.randbits(64)
        _last = (now, rand)
    return prefix + _encode(now, 9) + _encode(rand, 13)
