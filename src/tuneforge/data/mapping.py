"""The ``--map`` spec: convert any record shape to chat (or DPO) examples without writing code.

Each ``--map KEY=VALUE`` names where something lives in the input record. Field paths are dotted
(``meta.system``, ``turns.0.text``); a key that itself contains dots is matched whole first.
Several fields joined with ``+`` are concatenated with a blank line (``user=instruction+input``).

=============  ==============================================================================
key            meaning
=============  ==============================================================================
``system``     field(s) holding the system message text
``user``       field(s) with the user text; with ``turns``: the key of the user text in a turn
``assistant``  field(s) with the assistant text; with ``turns``: the key inside a turn
``turns``      field holding a list of turns (dicts, or ``[user, assistant]`` pairs)
``role``       with ``turns``: the key holding a turn's role (message-style turns)
``content``    with ``turns`` + ``role``: the key holding a turn's text (default ``content``)
``roles``      role value mapping, ``human:user,gpt:assistant`` (merged over the built-in one)
``prompt``     DPO: field with the prompt text (or a list of messages)
``chosen``     DPO: field with the preferred answer
``rejected``   DPO: field with the rejected answer
``tools``      field with an OpenAI ``tools`` list (or its JSON text)
=============  ==============================================================================

Examples::

    --map system=meta_instruction --map turns=chat --map user=咨询者 --map assistant=ChatLAW
    --map user=question --map assistant=answer
    --map turns=dialog --map role=speaker --map content=text --map roles=customer:user,agent:assistant
    --map prompt=question --map chosen=good --map rejected=bad
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAP_KEYS = ("system", "user", "assistant", "turns", "role", "content", "roles", "prompt", "chosen", "rejected", "tools")

ROLE_ALIASES = {
    "human": "user", "user": "user", "question": "user", "prompter": "user", "usr": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bot": "assistant",
    "model": "assistant", "ai": "assistant", "answer": "assistant", "bing": "assistant", "bard": "assistant",
    "system": "system", "tool": "tool", "observation": "tool", "function_response": "tool",
    "ipython": "tool", "function": "function", "developer": "system",
}


class MapError(ValueError):
    """A map spec is malformed, or a record lacks a field the spec names."""


@dataclass
class MapSpec:
    system: list[str] = field(default_factory=list)
    user: list[str] = field(default_factory=list)
    assistant: list[str] = field(default_factory=list)
    turns: str | None = None
    role: str | None = None
    content: str = "content"
    roles: dict[str, str] = field(default_factory=dict)
    prompt: list[str] = field(default_factory=list)
    chosen: str | None = None
    rejected: str | None = None
    tools: str | None = None

    @property
    def is_dpo(self) -> bool:
        return self.chosen is not None or self.rejected is not None

    def describe(self) -> str:
        parts = [f"{k}={v if isinstance(v, str) else '+'.join(v) if isinstance(v, list) else v}"
                 for k, v in self.__dict__.items() if v and not (k == "content" and v == "content")]
        return ", ".join(parts)


def parse_map(items: list[str] | None) -> MapSpec | None:
    """Parse ``KEY=VALUE`` strings (each may also hold several comma-free pairs separated by ';')."""
    if not items:
        return None
    spec = MapSpec()
    for raw in items:
        for item in raw.split(";"):
            if not item.strip():
                continue
            if "=" not in item:
                raise MapError(f"--map {item!r}: expected KEY=VALUE, e.g. user=question")
            key, value = (s.strip() for s in item.split("=", 1))
            if key not in MAP_KEYS:
                raise MapError(f"--map {item!r}: unknown key {key!r}; known keys: {', '.join(MAP_KEYS)}")
            if not value:
                raise MapError(f"--map {item!r}: empty value")
            if key in ("system", "user", "assistant", "prompt"):
                getattr(spec, key).extend(v.strip() for v in value.split("+") if v.strip())
            elif key == "roles":
                for pair in value.split(","):
                    if ":" not in pair:
                        raise MapError(f"--map roles={value!r}: expected FROM:TO pairs, e.g. human:user,gpt:assistant")
                    src, dst = (s.strip() for s in pair.split(":", 1))
                    if dst not in ("system", "user", "assistant", "tool", "function"):
                        raise MapError(f"--map roles: {dst!r} is not a chat role")
                    spec.roles[src] = dst
            else:
                setattr(spec, key, value)
    if spec.is_dpo:
        if not (spec.chosen and spec.rejected):
            raise MapError("--map for preference data needs both chosen=FIELD and rejected=FIELD")
    elif not spec.turns and not (spec.user and spec.assistant):
        raise MapError("--map needs user=FIELD and assistant=FIELD, or turns=FIELD (see docs/data-formats.md)")
    if spec.turns and not spec.role and not (spec.user and spec.assistant):
        # turns of {"role", "content"} messages
        spec.role = "role"
    return spec


_MISSING = object()


def get_path(obj: Any, path: str, default: Any = _MISSING) -> Any:
    """Dotted lookup; the whole path as one key wins, then segments, integers index lists."""
    if isinstance(obj, dict) and path in obj:
        return obj[path]
    cur = obj
    for seg in path.split("."):
        if isinstance(cur, dict) and seg in cur:
            cur = cur[seg]
        elif isinstance(cur, list) and seg.lstrip("-").isdigit() and -len(cur) <= int(seg) < len(cur):
            cur = cur[int(seg)]
        else:
            if default is _MISSING:
                avail = ", ".join(map(str, obj.keys())) if isinstance(obj, dict) else type(obj).__name__
                raise MapError(f"field {path!r} not found (available: {avail})")
            return default
    return cur


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float, bool)):
        return str(v)
    return json.dumps(v, ensure_ascii=False)


def _join(obj: Any, paths: list[str], *, required: bool = True) -> str:
    vals = []
    for p in paths:
        v = get_path(obj, p) if required else get_path(obj, p, None)
        t = _text(v).strip()
        if t:
            vals.append(t)
    return "\n\n".join(vals)


def map_role(value: Any, extra: dict[str, str] | None = None) -> str:
    v = str(value).strip()
    if extra and v in extra:
        return extra[v]
    return ROLE_ALIASES.get(v.lower(), v)


def apply_map(spec: MapSpec, rec: Any) -> dict[str, Any]:
    """Build one chat example (``{"messages": [...]}``) or DPO example from ``rec``."""
    if not isinstance(rec, dict):
        raise MapError(f"record is a {type(rec).__name__}, expected an object")
    system = _join(rec, spec.system) if spec.system else ""
    if spec.is_dpo:
        prompt_msgs: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        if spec.prompt:
            pv = get_path(rec, spec.prompt[0]) if len(spec.prompt) == 1 else None
            if isinstance(pv, list):
                prompt_msgs += [{"role": map_role(m.get("role", "user"), spec.roles), "content": _text(m.get("content"))}
                                for m in pv if isinstance(m, dict)]
            else:
                prompt_msgs.append({"role": "user", "content": _join(rec, spec.prompt)})
        return {
            "input": {"messages": prompt_msgs},
            "preferred_output": [{"role": "assistant", "content": _text(get_path(rec, spec.chosen or ""))}],
            "non_preferred_output": [{"role": "assistant", "content": _text(get_path(rec, spec.rejected or ""))}],
        }
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    if spec.turns:
        turns = get_path(rec, spec.turns)
        if isinstance(turns, str):
            try:
                turns = json.loads(turns)
            except json.JSONDecodeError:
                raise MapError(f"field {spec.turns!r} is text, not a list of turns") from None
        if not isinstance(turns, list):
            raise MapError(f"field {spec.turns!r} is a {type(turns).__name__}, expected a list of turns")
        for t in turns:
            if isinstance(t, (list, tuple)) and len(t) == 2:
                pairs = [("user", t[0]), ("assistant", t[1])]
            elif isinstance(t, dict) and spec.role and not (spec.user and spec.assistant):
                if spec.role not in t:
                    raise MapError(f"turn has no {spec.role!r} key (keys: {', '.join(map(str, t))})")
                pairs = [(map_role(t[spec.role], spec.roles), t.get(spec.content))]
            elif isinstance(t, dict):
                u = _join(t, spec.user, required=False)
                a = _join(t, spec.assistant, required=False)
                if not u and not a:
                    raise MapError(f"turn has neither {'+'.join(spec.user)!r} nor {'+'.join(spec.assistant)!r} "
                                   f"(keys: {', '.join(map(str, t))})")
                pairs = [("user", u), ("assistant", a)]
            else:
                raise MapError(f"a turn is a {type(t).__name__}, expected an object or a [user, assistant] pair")
            for role, content in pairs:
                text = _text(content)
                if text.strip():
                    messages.append({"role": role, "content": text})
        if spec.user and spec.assistant is None:  # pragma: no cover - guarded in parse_map
            pass
    else:
        messages.append({"role": "user", "content": _join(rec, spec.user)})
        messages.append({"role": "assistant", "content": _join(rec, spec.assistant)})
    out: dict[str, Any] = {"messages": messages}
    if spec.tools:
        tools = get_path(rec, spec.tools, None)
        if isinstance(tools, str) and tools.strip():
            tools = json.loads(tools)
        if tools:
            out["tools"] = tools
    return out
