"""Input shapes → OpenAI chat format (or OpenAI's DPO format), with auto-detection.

Shapes: ``chat`` (OpenAI ``messages``), ``prompt_completion`` (legacy), ``alpaca``
(``instruction``/``input``/``output``, optional ``system``/``history``), ``sharegpt``
(``conversations`` of ``from``/``value``), ``dpo`` (``input`` + ``preferred_output`` /
``non_preferred_output``, or the older ``*_completion`` names), ``preference_pairs``
(``prompt``/``chosen``/``rejected``), ``qa_table`` (question/answer-like columns) and ``mapped``
(a ``--map`` spec, see :mod:`tuneforge.data.mapping`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .mapping import MapError, MapSpec, apply_map, map_role

SHAPE_NAMES = {
    "chat": "OpenAI chat (messages)",
    "dpo": "OpenAI preference / DPO (input + preferred_output + non_preferred_output)",
    "preference_pairs": "preference pairs (prompt / chosen / rejected)",
    "prompt_completion": "legacy prompt / completion",
    "alpaca": "Alpaca (instruction / input / output)",
    "sharegpt": "ShareGPT (conversations of from / value)",
    "qa_table": "question / answer table",
    "mapped": "custom shape via --map",
    "unknown": "unknown",
}

_QA_USER = ("question", "prompt", "query", "instruction", "input", "q", "user", "ask", "问题", "问", "提问", "用户", "输入")
_QA_ASSISTANT = ("answer", "response", "completion", "output", "reply", "a", "assistant", "答案", "回答", "答", "回复", "输出")

# prepare_data's separators and stop sequences (stripped from legacy data on request)
LEGACY_SEPARATORS = ("\n\n###\n\n", "\n\n===\n\n", "\n\n---\n\n", "\n\n===>\n\n", "\n\n--->\n\n", "\n\n### =>\n\n", " ->", "->", "\n\n###", "###")
LEGACY_STOPS = (" END", "END", " [END]", "[END]", "\n", "***", "+++", "&&&", "$$$", "@@@", "%%%", "###")


class ShapeError(ValueError):
    pass


@dataclass
class Detection:
    shape: str
    counts: dict[str, int] = field(default_factory=dict)
    columns: tuple[str, str] | None = None  # qa_table: (user column, assistant column)
    sampled: int = 0

    @property
    def message(self) -> str:
        name = SHAPE_NAMES.get(self.shape, self.shape)
        extra = f" using columns {self.columns[0]!r} → user and {self.columns[1]!r} → assistant" if self.columns else ""
        n = self.counts.get(self.shape, 0)
        others = {k: v for k, v in self.counts.items() if k != self.shape}
        tail = f" ({', '.join(f'{v} {k}' for k, v in others.items())} did not match)" if others else ""
        return f"Detected {name}{extra} in {n} of the first {self.sampled} records{tail}."


def detect_record(rec: Any) -> str:
    if not isinstance(rec, dict):
        return "unknown"
    if isinstance(rec.get("messages"), list):
        return "chat"
    if "input" in rec and any(k in rec for k in ("preferred_output", "preferred_completion")):
        return "dpo"
    if "chosen" in rec and "rejected" in rec:
        return "preference_pairs"
    conv = rec.get("conversations", rec.get("conversation"))
    if isinstance(conv, list):
        return "sharegpt"
    if "instruction" in rec and "output" in rec:
        return "alpaca"
    if "prompt" in rec and "completion" in rec:
        return "prompt_completion"
    if _qa_columns(rec):
        return "qa_table"
    return "unknown"


def _qa_columns(rec: dict[str, Any]) -> tuple[str, str] | None:
    low = {str(k).strip().lower(): k for k in rec}
    u = next((low[n] for n in _QA_USER if n in low), None)
    a = next((low[n] for n in _QA_ASSISTANT if n in low and low[n] != u), None)
    return (u, a) if u is not None and a is not None else None


def detect_shape(records: Iterable[Any], sample: int = 200) -> Detection:
    counts: Counter[str] = Counter()
    cols: Counter[tuple[str, str]] = Counter()
    n = 0
    for rec in records:
        if n >= sample:
            break
        n += 1
        s = detect_record(rec)
        counts[s] += 1
        if s == "qa_table":
            c = _qa_columns(rec)
            if c:
                cols[c] += 1
    if not counts:
        return Detection("unknown", {}, None, 0)
    known = [(k, v) for k, v in counts.most_common() if k != "unknown"]
    shape = known[0][0] if known else "unknown"
    return Detection(shape, dict(counts), cols.most_common(1)[0][0] if shape == "qa_table" and cols else None, n)


# ------------------------------------------------------------------ converters


@dataclass
class ConvertOptions:
    system: str | None = None          # add (or replace) the system message
    replace_system: bool = True        # False: only add where an example has none
    strip_legacy: bool = False         # strip prompt separators / completion stop sequences
    prompt_suffix: str | None = None   # legacy: the separator to strip (auto when None)
    completion_suffix: str | None = None  # legacy: the stop sequence to strip (auto when None)
    mapping: MapSpec | None = None
    columns: tuple[str, str] | None = None


def _text(v: Any) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _tools_from(v: Any) -> list[dict[str, Any]] | None:
    if isinstance(v, str):
        if not v.strip():
            return None
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            raise ShapeError("'tools' is text but not JSON") from None
    if not v:
        return None
    if not isinstance(v, list):
        raise ShapeError("'tools' is not a list")
    out = []
    for t in v:
        if isinstance(t, dict) and t.get("type") == "function" and "function" in t:
            out.append(t)
        elif isinstance(t, dict) and "name" in t:
            out.append({"type": "function", "function": t})
        else:
            raise ShapeError("a 'tools' entry is neither an OpenAI tool nor a function definition")
    return out


def _sharegpt(rec: dict[str, Any]) -> dict[str, Any]:
    conv = rec.get("conversations", rec.get("conversation"))
    msgs: list[dict[str, Any]] = []
    if rec.get("system"):
        msgs.append({"role": "system", "content": _text(rec["system"])})
    last_call_ids: list[str] = []
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict):
            raise ShapeError(f"conversations[{i}] is not an object")
        src = turn.get("from", turn.get("role"))
        if src is None:
            raise ShapeError(f"conversations[{i}] has no 'from'")
        value = turn.get("value", turn.get("content"))
        if str(src).lower() == "function_call":
            try:
                call = json.loads(value) if isinstance(value, str) else value
            except json.JSONDecodeError:
                raise ShapeError(f"conversations[{i}]: function_call value is not JSON") from None
            calls = call if isinstance(call, list) else [call]
            tcs = []
            for c in calls:
                cid = f"call_{len(msgs)}_{len(tcs)}"
                args = c.get("arguments", {})
                tcs.append({"id": cid, "type": "function",
                            "function": {"name": c.get("name"), "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)}})
            last_call_ids = [t["id"] for t in tcs]
            msgs.append({"role": "assistant", "content": None, "tool_calls": tcs})
            continue
        role = map_role(src)
        if role not in ("system", "user", "assistant", "tool", "function"):
            raise ShapeError(f"conversations[{i}]: unknown speaker {src!r} (use --map roles={src}:user or similar)")
        m: dict[str, Any] = {"role": role, "content": _text(value)}
        if role == "tool":
            m["tool_call_id"] = last_call_ids.pop(0) if last_call_ids else f"call_{i}"
        if "weight" in turn and role == "assistant":
            m["weight"] = turn["weight"]
        msgs.append(m)
    out: dict[str, Any] = {"messages": msgs}
    tools = _tools_from(rec.get("tools"))
    if tools:
        out["tools"] = tools
    return out


def _alpaca(rec: dict[str, Any]) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    if rec.get("system"):
        msgs.append({"role": "system", "content": _text(rec["system"])})
    for pair in rec.get("history") or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            msgs += [{"role": "user", "content": _text(pair[0])}, {"role": "assistant", "content": _text(pair[1])}]
        else:
            raise ShapeError("'history' entries must be [user, assistant] pairs")
    user = _text(rec.get("instruction")).strip()
    inp = _text(rec.get("input")).strip()
    msgs.append({"role": "user", "content": f"{user}\n\n{inp}" if user and inp else (user or inp)})
    msgs.append({"role": "assistant", "content": _text(rec.get("output"))})
    return {"messages": msgs}


def _prompt_messages(p: Any) -> list[dict[str, Any]]:
    if isinstance(p, list):
        return [{"role": map_role(m.get("role", m.get("from", "user"))), "content": _text(m.get("content", m.get("value")))}
                for m in p if isinstance(m, dict)]
    return [{"role": "user", "content": _text(p)}] if _text(p).strip() else []


def _answer(v: Any) -> tuple[list[dict[str, Any]], str]:
    """A chosen/rejected value: text, or a message list whose last message is the answer."""
    if isinstance(v, list) and v and isinstance(v[-1], dict):
        return _prompt_messages(v[:-1]), _text(v[-1].get("content", v[-1].get("value")))
    if isinstance(v, dict):
        return [], _text(v.get("content"))
    return [], _text(v)


def _preference(rec: dict[str, Any]) -> dict[str, Any]:
    prefix_c, chosen = _answer(rec["chosen"])
    _, rejected = _answer(rec["rejected"])
    msgs = _prompt_messages(rec["prompt"]) if "prompt" in rec else prefix_c
    if rec.get("system") and not any(m["role"] == "system" for m in msgs):
        msgs.insert(0, {"role": "system", "content": _text(rec["system"])})
    return {"input": {"messages": msgs},
            "preferred_output": [{"role": "assistant", "content": chosen}],
            "non_preferred_output": [{"role": "assistant", "content": rejected}]}


def _dpo(rec: dict[str, Any]) -> dict[str, Any]:
    out = dict(rec)
    if "preferred_completion" in out and "preferred_output" not in out:
        out["preferred_output"] = out.pop("preferred_completion")
    if "non_preferred_completion" in out and "non_preferred_output" not in out:
        out["non_preferred_output"] = out.pop("non_preferred_completion")
    for k in ("preferred_output", "non_preferred_output"):
        v = out.get(k)
        if isinstance(v, str):
            out[k] = [{"role": "assistant", "content": v}]
        elif isinstance(v, dict):
            out[k] = [v]
    inp = out.get("input")
    if isinstance(inp, list):
        out["input"] = {"messages": inp}
    elif isinstance(inp, str):
        out["input"] = {"messages": [{"role": "user", "content": inp}]}
    return out


def _strip_suffix(text: str, suffix: str | None) -> str:
    return text[: -len(suffix)] if suffix and text.endswith(suffix) else text


def _legacy(rec: dict[str, Any], opts: ConvertOptions) -> dict[str, Any]:
    prompt, completion = _text(rec.get("prompt")), _text(rec.get("completion"))
    if opts.strip_legacy:
        prompt = _strip_suffix(prompt, opts.prompt_suffix).rstrip()
        completion = _strip_suffix(completion, opts.completion_suffix)
        completion = completion[1:] if completion.startswith(" ") else completion
        completion = completion.rstrip()
    msgs = [{"role": "user", "content": prompt}] if prompt.strip() else []
    msgs.append({"role": "assistant", "content": completion})
    return {"messages": msgs}


def _common_suffix(a: str | None, b: str) -> str:
    if a is None:
        return b
    n = 0
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y:
            break
        n += 1
    return a[len(a) - n:] if n else ""


def legacy_suffixes(records: Iterable[Any]) -> tuple[str | None, str | None]:
    """The prepare_data separator every prompt ends with and the stop sequence every completion
    ends with (None where there is no such common convention)."""
    ps: str | None = None
    cs: str | None = None
    for rec in records:
        if isinstance(rec, dict) and "prompt" in rec:
            ps = _common_suffix(ps, _text(rec.get("prompt")))
            cs = _common_suffix(cs, _text(rec.get("completion")))
    sep = next((s for s in LEGACY_SEPARATORS if ps and ps.endswith(s)), None)
    stop = next((s for s in LEGACY_STOPS if cs and cs.endswith(s)), None)
    return sep, stop


def _apply_system(ex: dict[str, Any], opts: ConvertOptions) -> dict[str, Any]:
    if opts.system is None:
        return ex
    msgs = ex["input"]["messages"] if "input" in ex and isinstance(ex.get("input"), dict) else ex["messages"]
    has = bool(msgs) and isinstance(msgs[0], dict) and msgs[0].get("role") == "system"
    if has and opts.replace_system:
        msgs[0] = {"role": "system", "content": opts.system}
    elif not has:
        msgs.insert(0, {"role": "system", "content": opts.system})
    return ex


def convert_record(rec: Any, shape: str, opts: ConvertOptions | None = None) -> dict[str, Any]:
    """One record → an OpenAI chat example (or OpenAI DPO example). Raises ShapeError/MapError."""
    opts = opts or ConvertOptions()
    if shape == "mapped":
        if opts.mapping is None:
            raise ShapeError("shape 'mapped' needs a --map spec")
        ex = apply_map(opts.mapping, rec)
    else:
        if not isinstance(rec, dict):
            raise ShapeError(f"record is a {type(rec).__name__}, expected an object")
        got = detect_record(rec)
        if shape != got and not (shape == "qa_table" and opts.columns):
            raise ShapeError(f"record looks like {SHAPE_NAMES.get(got, got)}, not {SHAPE_NAMES.get(shape, shape)}")
        if shape == "chat":
            ex = {k: v for k, v in rec.items()}
        elif shape == "sharegpt":
            ex = _sharegpt(rec)
        elif shape == "alpaca":
            ex = _alpaca(rec)
        elif shape == "prompt_completion":
            ex = _legacy(rec, opts)
        elif shape == "dpo":
            ex = _dpo(rec)
        elif shape == "preference_pairs":
            ex = _preference(rec)
        elif shape == "qa_table":
            cols = opts.columns or _qa_columns(rec)
            if not cols or cols[0] not in rec or cols[1] not in rec:
                raise ShapeError("no question/answer columns; pass --map user=COLUMN --map assistant=COLUMN")
            ex = {"messages": [{"role": "user", "content": _text(rec[cols[0]])},
                               {"role": "assistant", "content": _text(rec[cols[1]])}]}
        else:
            keys = ", ".join(map(str, rec.keys()))
            raise ShapeError(f"unrecognised record shape (keys: {keys}); describe it with --map "
                             "(e.g. --map user=question --map assistant=answer)")
    return _apply_system(ex, opts)


def is_dpo_example(ex: Any) -> bool:
    return isinstance(ex, dict) and "input" in ex and ("preferred_output" in ex or "non_preferred_output" in ex)


__all__ = ["SHAPE_NAMES", "ConvertOptions", "Detection", "MapError", "ShapeError", "convert_record",
           "detect_record", "detect_shape", "is_dpo_example", "legacy_suffixes"]
