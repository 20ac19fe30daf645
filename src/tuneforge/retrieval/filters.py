"""OpenAI's attribute filters (``ComparisonFilter`` / ``CompoundFilter``) over vector-store files.

A filter is checked once per request (:func:`validate`) and then evaluated per file against its
``attributes``; a comparison on a missing key is false (``ne``/``nin`` included), as a filter
"category != x" should not match files that have no category at all.
"""

from __future__ import annotations

from typing import Any

from tuneforge.errors import InvalidRequest

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")


def validate(flt: Any, param: str = "filters") -> dict:
    if not isinstance(flt, dict):
        raise InvalidRequest("A filter must be an object.", param=param)
    kind = flt.get("type")
    if kind in ("and", "or"):
        subs = flt.get("filters")
        if not isinstance(subs, list) or not subs:
            raise InvalidRequest(f"A compound '{kind}' filter needs a non-empty 'filters' list.", param=param)
        return {"type": kind, "filters": [validate(s, f"{param}.filters[{i}]") for i, s in enumerate(subs)]}
    if kind not in COMPARISONS:
        raise InvalidRequest(f"Invalid filter type {kind!r}: expected one of {', '.join(COMPARISONS)}, and, or.",
                             param=f"{param}.type")
    if not isinstance(flt.get("key"), str):
        raise InvalidRequest("A comparison filter needs a string 'key'.", param=f"{param}.key")
    value = flt.get("value")
    if kind in ("in", "nin"):
        if not isinstance(value, list):
            raise InvalidRequest(f"'{kind}' needs a list 'value'.", param=f"{param}.value")
    elif not isinstance(value, (str, int, float, bool)):
        raise InvalidRequest("A comparison 'value' must be a string, number or boolean.", param=f"{param}.value")
    return {"type": kind, "key": flt["key"], "value": value}


def matches(flt: dict, attributes: dict | None) -> bool:
    kind = flt["type"]
    if kind == "and":
        return all(matches(s, attributes) for s in flt["filters"])
    if kind == "or":
        return any(matches(s, attributes) for s in flt["filters"])
    attrs = attributes or {}
    if flt["key"] not in attrs:
        return False
    have, want = attrs[flt["key"]], flt["value"]
    if kind == "eq":
        return have == want
    if kind == "ne":
        return have != want
    if kind == "in":
        return have in want
    if kind == "nin":
        return have not in want
    numeric = (int, float)
    if isinstance(have, bool) or isinstance(want, bool):
        return False
    if not (isinstance(have, numeric) and isinstance(want, numeric)) and not (
            isinstance(have, str) and isinstance(want, str)):
        return False
    return {"gt": have > want, "gte": have >= want, "lt": have < want, "lte": have <= want}[kind]
