"""The original simple API answers {"info": "ok", "response": ...}."""

from __future__ import annotations

from typing import Any


def ok(response: Any) -> dict:
    return {"info": "ok", "response": response}
