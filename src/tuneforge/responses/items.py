"""Items of the Responses API: what a client sends as ``input`` normalized to stored items (with ids),
output items built here, and items turned into the chat messages a model's template renders.

Every stored item carries an id so it can be listed, paginated and referenced (``item_reference``)."""

from __future__ import annotations

from typing import Any

from tuneforge.errors import InvalidRequest
from tuneforge.ids import new_id

INPUT_ROLES = ("user", "system", "developer", "assistant")
# Item types that only make sense with function calling: their rendering belongs to the tool-calling
# path (``generation.function_items``), not to the plain-text path.
FUNCTION_ITEMS = ("function_call", "function_call_output")


def _text_parts(content: Any, where: str, role: str) -> list[dict]:
    """Content as stored: a list of ``input_text`` (or, for assistant turns, ``output_text``) parts."""
    kind = "output_text" if role == "assistant" else "input_text"
    if isinstance(content, str):
        part = {"type": kind, "text": content}
        if kind == "output_text":
            part["annotations"] = []
        return [part]
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid '{where}.content': expected a string or an array of content parts.",
                             param=f"{where}.content")
    parts = []
    for j, part in enumerate(content):
        ptype = part.get("type") if isinstance(part, dict) else None
        if ptype in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            out = {"type": kind, "text": part["text"]}
            if kind == "output_text":
                out["annotations"] = list(part.get("annotations") or [])
            parts.append(out)
        elif ptype in ("input_image", "input_file", "input_audio", "refusal"):
            raise InvalidRequest(f"Content parts of type '{ptype}' are not supported by this server (text only).",
                                 param=f"{where}.content[{j}].type", code="unsupported_parameter")
        else:
            raise InvalidRequest(f"Invalid content part at '{where}.content[{j}]'.", param=f"{where}.content[{j}]")
    return parts


def normalize_input(value: Any, *, resolve_reference) -> list[dict]:
    """``input`` (a string or a list of items) -> stored items. ``resolve_reference(id)`` returns the
    item an ``item_reference`` points at (or raises 404)."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise InvalidRequest("Invalid 'input': expected a string or an array of items.", param="input")
    return [normalize_item(item, f"input[{i}]", resolve_reference=resolve_reference) for i, item in enumerate(value)]


def normalize_item(item: Any, where: str, *, resolve_reference=None) -> dict:
    if not isinstance(item, dict):
        raise InvalidRequest(f"Invalid '{where}': expected an object.", param=where)
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = item.get("role")
        if role not in INPUT_ROLES:
            raise InvalidRequest(f"Invalid '{where}.role': {role!r}. Supported roles: {', '.join(INPUT_ROLES)}.",
                                 param=f"{where}.role")
        out = {"id": item.get("id") or new_id("msg_"), "type": "message", "role": role,
               "content": _text_parts(item.get("content"), where, role), "status": "completed"}
        return out
    if kind == "item_reference":
        if resolve_reference is None or not isinstance(item.get("id"), str):
            raise InvalidRequest(f"Invalid '{where}': an item_reference needs an 'id'.", param=f"{where}.id")
        return resolve_reference(item["id"])
    if kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                raise InvalidRequest(f"Missing or invalid '{where}.{key}'.", param=f"{where}.{key}")
        return {"id": item.get("id") or new_id("fc_"), "type": "function_call", "call_id": item["call_id"],
                "name": item["name"], "arguments": item["arguments"], "status": "completed"}
    if kind == "function_call_output":
        if not isinstance(item.get("call_id"), str) or not isinstance(item.get("output"), str | list):
            raise InvalidRequest(f"Invalid '{where}': needs 'call_id' and 'output'.", param=where)
        return {"id": item.get("id") or new_id("fco_"), "type": "function_call_output", "call_id": item["call_id"],
                "output": item["output"], "status": "completed"}
    if kind == "file_search_call":  # an earlier response's search, sent back by a stateless client
        return {"id": item.get("id") or new_id("fs_"), "type": "file_search_call",
                "queries": list(item.get("queries") or []), "status": item.get("status") or "completed",
                "results": item.get("results")}
    if kind == "reasoning":
        raise InvalidRequest("Reasoning items are not supported: this server's models do not reason.",
                             param=f"{where}.type", code="unsupported_parameter")
    raise InvalidRequest(f"Items of type {kind!r} are not supported by this server.", param=f"{where}.type",
                         code="unsupported_parameter")


def item_text(item: dict) -> str:
    return "".join(p.get("text") or "" for p in item.get("content") or [] if isinstance(p, dict))


def last_user_text(items: list[dict]) -> str:
    for item in reversed(items):
        if item.get("type") == "message" and item.get("role") == "user":
            return item_text(item)
    return ""


def to_messages(items: list[dict]) -> list[dict]:
    """Stored items -> chat messages. Tool-call items become the chat-completions shapes (assistant
    ``tool_calls``, role ``tool``) that the tool-calling path of chat completions renders; searches the
    model already saw are context only and are not repeated."""
    messages: list[dict] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            messages.append({"role": role, "content": item_text(item)})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls"):
                messages[-1]["tool_calls"].append(call)  # parallel calls of one turn
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else "".join(
                p.get("text") or "" for p in output if isinstance(p, dict))
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
    return messages


def output_message(text: str, *, status: str = "completed", annotations: list | None = None,
                   logprobs: list | None = None, item_id: str | None = None) -> dict:
    part = {"type": "output_text", "text": text, "annotations": annotations or []}
    if logprobs is not None:
        part["logprobs"] = logprobs
    return {"id": item_id or new_id("msg_"), "type": "message", "role": "assistant", "status": status,
            "content": [part]}
