"""Validation of OpenAI's ``metadata`` (strings) and ``attributes`` (strings, numbers, booleans)
maps, and the JSON-in-text columns they are stored in."""

from __future__ import annotations

import json
from typing import Any

from tuneforge.errors import InvalidRequest

MAX_PAIRS, MAX_KEY, MAX_VALUE = 16, 64, 512


def check_metadata(value: Any, param: str = "metadata") -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{param}' must be an object of string keys and values.", param=param)
    if len(value) > MAX_PAIRS:
        raise InvalidRequest(f"'{param}' can have at most {MAX_PAIRS} pairs.", param=param)
    for key, val in value.items():
        if not isinstance(key, str) or len(key) > MAX_KEY:
            raise InvalidRequest(f"'{param}' keys are strings of at most {MAX_KEY} characters.", param=param)
        if not isinstance(val, str) or len(val) > MAX_VALUE:
            raise InvalidRequest(f"'{param}.{key}' must be a string of at most {MAX_VALUE} characters.",
                                 param=f"{param}.{key}")
    return dict(value)


def check_attributes(value: Any, param: str = "attributes") -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_PAIRS:
        raise InvalidRequest(f"'{param}' must be an object of at most {MAX_PAIRS} pairs.", param=param)
    for key, val in value.items():
        if not isinstance(key, str) or len(key) > MAX_KEY:
            raise InvalidRequest(f"'{param}' keys are strings of at most {MAX_KEY} characters.", param=param)
        if not isinstance(val, (str, int, float, bool)) or (isinstance(val, str) and len(val) > MAX_VALUE):
            raise InvalidRequest(f"'{param}.{key}' must be a string (at most {MAX_VALUE} characters), a number "
                                 "or a boolean.", param=f"{param}.{key}")
    return dict(value)


def dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)
