"""Checks of tool calls and tool definitions in chat examples (used by :mod:`.validate`)."""

from __future__ import annotations

import json
from typing import Any

Problem = tuple[str, str]  # (code, message)


def valid_tool_calls(calls: Any) -> str | None:
    if not isinstance(calls, list) or not calls:
        return "tool_calls must be a non-empty list"
    for j, c in enumerate(calls):
        if not isinstance(c, dict):
            return f"tool_calls[{j}] is not an object"
        if not isinstance(c.get("id"), str) or not c["id"]:
            return f"tool_calls[{j}] has no id"
        if c.get("type", "function") != "function":
            return f"tool_calls[{j}].type must be 'function'"
        fn = c.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            return f"tool_calls[{j}].function has no name"
        args = fn.get("arguments")
        if not isinstance(args, str):
            return f"tool_calls[{j}].function.arguments must be a JSON string"
        try:
            json.loads(args)
        except json.JSONDecodeError:
            return f"tool_calls[{j}].function.arguments is not valid JSON"
    return None


def check_tools(tools: Any) -> list[Problem]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        return [("invalid_tools", "'tools' is not a list")]
    for j, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
            return [("invalid_tools", f"tools[{j}] is not a function tool with a name")]
    return []
