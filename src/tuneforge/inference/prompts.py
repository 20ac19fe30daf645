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
    """OpenAI message objects -> plain ``{role, content}`` dicts chat templates understand."""
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    out = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequest(f"Invalid value for 'messages[{i}].role': {role!r}. Supported roles: "
                                 "system, developer, user, assistant, tool.", param=f"messages.[{i}].role")
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            raise InvalidRequest("Assistant messages with tool calls are not supported (this server does not "
                                 "implement tools).", param=f"messages.[{i}].tool_calls")
        text = message_text(message.get("content"), i)
        # Chat templates of open models know 'system', not OpenAI's newer 'developer'.
        out.append({"role": "system" if role == "developer" else role, "content": text})
    return out


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


def render_chat(tokenizer, messages: list[dict], template: str | None) -> list[int]:
    """Prompt token ids for ``messages`` plus the assistant generation prompt."""
    if template is None and not getattr(tokenizer, "chat_template", None):
        raise InvalidRequest("This model has no chat template; use /v1/completions with a plain prompt.",
                             param="model")
    try:
        text = tokenizer.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                             tokenize=False)
    except Exception as exc:  # jinja errors: templates raise on roles or orders they do not accept
        raise InvalidRequest(f"The model's chat template rejected these messages: {exc}", param="messages") from None
    # The template writes any BOS itself; adding special tokens again would double it.
    return tokenizer(text, add_special_tokens=False)["input_ids"]
