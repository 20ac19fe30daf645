"""Turning chat messages into prompt tokens with the right chat template.

Template order: the adapter folder's ``chat_template.jinja``, then a tokenizer saved with the adapter
(``tokenizer_config.json``'s ``chat_template``), then the base tokenizer's template. Training
renders examples with the same template, so a fine-tuned model sees prompts shaped as it learned.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tuneforge.errors import InvalidRequest

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_cache: dict[tuple[str, int], str | None] = {}
_lock = threading.Lock()


def message_text(content, index: int) -> str:
    """A message's content as text: a string, null, or an array of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                raise InvalidRequest(f"Invalid content part at messages[{index}].content[{j}].",
                                     param=f"messages.[{index}].content")
            kind = part.get("type")
            if kind == "text":
                parts.append(str(part.get("text", "")))
            elif kind == "refusal":
                parts.append(str(part.get("refusal", "")))
            else:
                raise InvalidRequest(
                    f"Content parts of type '{kind}' are not supported by this server (text only); "
                    f"found in messages[{index}].", param=f"messages.[{index}].content.[{j}].type")
        return "".join(parts)
    raise InvalidRequest(f"Invalid content at messages[{index}]: expected a string or an array of parts.",
                         param=f"messages.[{index}].content")


def normalize_messages(messages: list[dict]) -> list[dict]:
    """OpenAI message objects -> the dicts chat templates understand: ``{role, content}``, plus Hugging Face
    style ``tool_calls`` (arguments parsed to objects) on assistant turns and ``tool_call_id`` on tool turns."""
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    out = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequest(f"Invalid value for 'messages[{i}].role': {role!r}. Supported roles: "
                                 "system, developer, user, assistant, tool.", param=f"messages.[{i}].role")
        text = message_text(message.get("content"), i)
        # Chat templates of open models know 'system', not OpenAI's newer 'developer'.
        entry = {"role": "system" if role == "developer" else role, "content": text}
        if role == "assistant":
            calls = list(message.get("tool_calls") or [])
            if message.get("function_call"):  # the deprecated single-call form
                calls.append({"id": "call_legacy", "type": "function", "function": message["function_call"]})
            if calls:
                entry["tool_calls"] = [_tool_call(call, i, j) for j, call in enumerate(calls)]
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id") if role == "tool" else message.get("name")
            if not isinstance(call_id, str) or not call_id:
                param = "tool_call_id" if role == "tool" else "name"
                raise InvalidRequest(f"Missing '{param}' in messages[{i}] (role '{role}').",
                                     param=f"messages.[{i}].{param}")
            entry = {"role": "tool", "content": text, "tool_call_id": call_id}
        out.append(entry)
    return out


def _tool_call(call, i: int, j: int) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"Invalid tool call at messages[{i}].tool_calls[{j}]: 'function.name' is required.",
                             param=f"messages.[{i}].tool_calls.[{j}].function")
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        arguments = raw  # shown to the model as it was sent
    return {"id": call.get("id") or f"call_{i}_{j}", "type": "function",
            "function": {"name": function["name"], "arguments": arguments}}


TOOL_PROMPT = (
    "You may call functions to help answer. The functions, as JSON schemas:\n<tools>\n{tools}\n</tools>\n"
    "To call functions, answer with one block per call and nothing else:\n"
    '<tool_call>\n{{"name": "<function name>", "arguments": {{<arguments as JSON>}}}}\n</tool_call>')


def _uses_tools(template: str | None) -> bool:
    return bool(template) and "tool" in template


def with_tools(messages: list[dict], tools: list[dict] | None, template: str | None) -> tuple[list[dict], list | None]:
    """Messages and ``tools`` for ``apply_chat_template``. A template that knows tools gets them as they
    are; for one that does not, the documented Hermes-style format is written into the messages: the
    functions into the system message, past calls as ``<tool_call>`` blocks, results as
    ``<tool_response>`` blocks in a user turn."""
    has_history = any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
    if _uses_tools(template) or (not tools and not has_history):
        return messages, tools or None
    out = []
    for m in messages:
        if m.get("tool_calls"):
            blocks = [f'<tool_call>\n{json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]})}'
                      f"\n</tool_call>" for c in m["tool_calls"]]
            content = "\n".join(([m["content"]] if m["content"] else []) + blocks)
            out.append({"role": "assistant", "content": content})
        elif m["role"] == "tool":
            block = f"<tool_response>\n{m['content']}\n</tool_response>"
            if out and out[-1]["role"] == "user" and out[-1].get("_responses"):
                out[-1]["content"] += "\n" + block  # parallel results in one turn
            else:
                out.append({"role": "user", "content": block, "_responses": True})
        else:
            out.append(dict(m))
    for m in out:
        m.pop("_responses", None)
    if tools:
        described = "\n".join(json.dumps(t.get("function", t)) for t in tools)
        text = TOOL_PROMPT.format(tools=described)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + text}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out, None


def adapter_chat_template(adapter_dir: Path | None) -> str | None:
    """The chat template saved with an adapter, if any (cached per folder and modification time)."""
    if adapter_dir is None:
        return None
    adapter_dir = Path(adapter_dir)
    try:
        stamp = max((p.stat().st_mtime_ns for p in adapter_dir.iterdir()), default=0)
    except OSError:
        return None
    key = (str(adapter_dir), stamp)
    with _lock:
        if key in _cache:
            return _cache[key]
    template = None
    jinja = adapter_dir / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    else:
        try:
            config = json.loads((adapter_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
            value = config.get("chat_template")
            template = value if isinstance(value, str) and value.strip() else None
        except (OSError, ValueError):
            template = None
    with _lock:
        _cache[key] = template
    return template


def render_chat(tokenizer, messages: list[dict], template: str | None, tools: list[dict] | None = None) -> list[int]:
    """Prompt token ids for ``messages`` (and the ``tools`` offered, if any) plus the assistant generation prompt."""
    source = template or getattr(tokenizer, "chat_template", None)
    if not source:
        raise InvalidRequest("This model has no chat template; use /v1/completions with a plain prompt.",
                             param="model")
    messages, tools = with_tools(messages, tools, source if isinstance(source, str) else json.dumps(source))
    try:
        text = tokenizer.apply_chat_template(messages, chat_template=template, tools=tools,
                                             add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # jinja errors: templates raise on roles or orders they do not accept
        raise InvalidRequest(f"The model's chat template rejected these messages: {exc}", param="messages") from None
    # The template writes any BOS itself; adding special tokens again would double it.
    return tokenizer(text, add_special_tokens=False)["input_ids"]
