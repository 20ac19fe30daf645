"""Checks for chat (supervised) and preference (DPO) JSONL files, streamed.

:func:`check_example` returns the per-example problems (used by ``check`` and ``fix``);
:class:`Checker` adds the dataset-level checks (duplicates, counts, identical answers, prefixes,
languages, token lengths) while keeping memory flat: per example it keeps a few integers in
compact arrays, never the example itself.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .estimate import estimate, parse_params
from .issues import MAX_LINES, MAX_SAMPLES, Report
from .plain_chat import plain_chat, plain_problems
from .readers import Record
from .shapes import SHAPE_NAMES, detect_record
from .stats import common_prefix, distribution, histogram
from .textscan import count_ascii_upper, needs_ws_normalising, script_of, script_of_plain
from .tokens import TokenCounter
from .tool_checks import check_tools as _check_tools
from .tool_checks import valid_tool_calls as _valid_tool_calls

ROLES = {"system", "user", "assistant", "tool", "function"}
_PLAIN_ROLES = ("system", "user", "assistant")  # valid with just role + non-empty text content
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
EXAMPLE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
DPO_KEYS = {"input", "preferred_output", "non_preferred_output", "preferred_completion", "non_preferred_completion"}
MIN_EXAMPLES = 10
LONG_ANSWER_CHARS = 10_000
Problem = tuple[str, str]  # (code, message)

_LATIN = re.compile(r"[A-Za-z]")
_LOWER = re.compile(r"[a-z]")


def check_messages(msgs: Any, *, need_assistant: bool = True, fast: bool = True) -> list[Problem]:
    """Message-level and conversation-level problems of a ``messages`` list (``fast=False`` takes the
    general path for every message; the result is the same, tested)."""
    out: list[Problem] = []
    if not isinstance(msgs, list) or not msgs:
        return [("missing_messages_list", "'messages' is missing or empty")]
    call_ids: set[str] = set()
    n_assistant = n_trained = 0
    has_user = False
    for i, m in enumerate(msgs, 1):
        if fast and type(m) is dict and len(m) == 2 and "content" in m and "role" in m:
            # the common message ({"role": system/user/assistant, "content": "text"}) has no
            # problem: only the conversation-level tallies below need it
            role, content = m["role"], m["content"]
            if type(content) is str and role in _PLAIN_ROLES and content.strip():
                if role == "assistant":
                    n_assistant += 1
                    n_trained += 1
                elif role == "user":
                    has_user = True
                continue
        if not isinstance(m, dict):
            out.append(("message_data_type", f"message {i} is a {type(m).__name__}, not an object"))
            continue
        role = m.get("role")
        calls = m.get("tool_calls")
        has_call = bool(calls) or bool(m.get("function_call"))
        if "role" not in m:
            out.append(("message_missing_key", f"message {i} has no 'role'"))
        if "content" not in m and not (role == "assistant" and has_call):
            out.append(("message_missing_key", f"message {i} ({role}) has no 'content'"))
        extra = set(m) - MESSAGE_KEYS
        if extra:
            out.append(("message_unrecognized_key", f"message {i} has unrecognized key(s): {', '.join(sorted(map(str, extra)))}"))
        if "role" in m and role not in ROLES:
            out.append(("unrecognized_role", f"message {i} has unrecognized role {role!r}"))
        content = m.get("content")
        if "content" in m:
            if content is None:
                if not (role == "assistant" and has_call):
                    out.append(("missing_content", f"message {i} ({role}) has null content"))
            elif isinstance(content, list):
                for p in content:
                    ok = isinstance(p, dict) and ((p.get("type") == "text" and isinstance(p.get("text"), str))
                                                  or (p.get("type") == "image_url" and role == "user"))
                    if not ok:
                        out.append(("invalid_content", f"message {i} ({role}) has an unsupported content part"))
                        break
                else:
                    if not any(isinstance(p, dict) and (p.get("text") or "").strip() or p.get("type") == "image_url"
                               for p in content):
                        out.append(("empty_content", f"message {i} ({role}) has no text"))
            elif not isinstance(content, str):
                out.append(("missing_content", f"message {i} ({role}) content is a {type(content).__name__}, not text"))
            elif not content.strip() and not (role == "assistant" and has_call):
                out.append(("empty_content", f"message {i} ({role}) content is {'empty' if not content else 'only whitespace'}"))
        if "weight" in m:
            w = m["weight"]
            if role != "assistant":
                out.append(("invalid_weight", f"message {i} ({role}) has a weight; only assistant messages may"))
            elif isinstance(w, bool) or w not in (0, 1):
                out.append(("invalid_weight", f"message {i} weight is {w!r}; must be 0 or 1"))
        if "name" in m and not isinstance(m["name"], str):
            out.append(("message_unrecognized_key", f"message {i} name must be a string"))
        if calls is not None:
            err = "tool_calls are only allowed on assistant messages" if role != "assistant" else _valid_tool_calls(calls)
            if err:
                out.append(("invalid_tool_call", f"message {i}: {err}"))
            elif isinstance(calls, list):
                call_ids.update(c["id"] for c in calls)
        if role == "tool":
            tid = m.get("tool_call_id")
            if not isinstance(tid, str) or not tid:
                out.append(("invalid_tool_call", f"message {i} (tool) has no tool_call_id"))
            elif tid not in call_ids:
                out.append(("invalid_tool_call", f"message {i} (tool) answers unknown tool_call_id {tid!r}"))
        if role == "function" and not isinstance(m.get("name"), str):
            out.append(("invalid_tool_call", f"message {i} (function) has no name"))
        if role == "assistant":
            n_assistant += 1
            if m.get("weight", 1) != 0:
                n_trained += 1
        elif role == "user":
            has_user = True
    if need_assistant:
        if n_assistant == 0:
            out.append(("example_missing_assistant_message", "no assistant message"))
        elif n_trained == 0:
            out.append(("no_trained_tokens", "every assistant message has weight 0"))
        last = msgs[-1]
        if n_assistant and isinstance(last, dict) and last.get("role") != "assistant":
            out.append(("last_message_not_assistant", f"the last message is {last.get('role')!r}, not assistant"))
        if not has_user:
            out.append(("missing_user_message", "no user message"))
        first = msgs[0]
        if not (isinstance(first, dict) and first.get("role") == "system"):
            out.append(("missing_system_message", "no system message"))
    return out


def check_dpo_example(ex: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    inp = ex.get("input")
    msgs = inp.get("messages") if isinstance(inp, dict) else None
    if not isinstance(msgs, list) or not msgs:
        out.append(("dpo_missing_input", "no input.messages"))
    else:
        out += [p for p in check_messages(msgs, need_assistant=False)]
        if isinstance(msgs[-1], dict) and msgs[-1].get("role") == "assistant":
            out.append(("dpo_input_ends_with_assistant", "input ends with an assistant message"))
        if isinstance(inp, dict):
            out += _check_tools(inp.get("tools"))
    if "preferred_completion" in ex or "non_preferred_completion" in ex:
        out.append(("dpo_legacy_keys", "uses *_completion key names"))
    texts = []
    for key in ("preferred_output", "non_preferred_output"):
        v = ex.get(key, ex.get(key.replace("_output", "_completion")))
        if not v:
            out.append(("dpo_missing_output", f"{key} is missing or empty"))
            continue
        if (not isinstance(v, list) or len(v) != 1 or not isinstance(v[0], dict) or v[0].get("role") != "assistant"
                or not isinstance(v[0].get("content"), str) or not v[0]["content"].strip()):
            out.append(("dpo_invalid_output", f"{key} must be one assistant message with text"))
            continue
        texts.append(v[0]["content"])
    if len(texts) == 2 and texts[0].strip() == texts[1].strip():
        out.append(("dpo_identical_outputs", "preferred and non-preferred outputs are identical"))
    return out


def example_kind(ex: Any) -> str:
    """'chat', 'dpo' or another shape name from :func:`detect_record`."""
    s = detect_record(ex)
    return s if s != "unknown" or not isinstance(ex, dict) else ("chat" if "messages" in ex else "unknown")


def check_example(ex: Any, method: str = "supervised", *, fast: bool = True) -> list[Problem]:
    """All per-example problems of one parsed JSON line (method 'supervised' or 'dpo')."""
    if not isinstance(ex, dict):
        return [("data_type", f"the line is a JSON {type(ex).__name__}, not an object")]
    kind = example_kind(ex)
    if method == "dpo":
        if kind == "chat":
            return [("format_mismatch", "a chat example in a preference (DPO) file")]
        return check_dpo_example(ex)
    if kind == "dpo":
        return [("format_mismatch", "a preference (DPO) example in a supervised file")]
    if "messages" not in ex:
        hint = f" (it looks like {SHAPE_NAMES[kind]}: convert it with `tuneforge data convert`)" if kind != "unknown" else ""
        return [("missing_messages_list", f"no 'messages' list{hint}")]
    out = check_messages(ex["messages"], fast=fast)
    extra = set(ex) - EXAMPLE_KEYS
    if extra:
        out.append(("example_unrecognized_key", f"unrecognized top-level key(s): {', '.join(sorted(map(str, extra)))}"))
    out += _check_tools(ex.get("tools"))
    return out


def _texts(ex: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of every message (DPO: input + preferred output)."""
    if "messages" in ex:
        msgs = ex["messages"]
    else:
        msgs = list((ex.get("input") or {}).get("messages") or []) + list(ex.get("preferred_output") or ex.get("preferred_completion") or [])
    out = []
    for m in msgs:
        c = m.get("content")
        if isinstance(c, list):
            c = "".join(p.get("text", "") for p in c if isinstance(p, dict) and isinstance(p.get("text"), str))
        out.append((m.get("role", ""), c if isinstance(c, str) else ""))
    return out


def counting_view(ex: dict[str, Any]) -> dict[str, Any]:
    """The chat example the token counter sees (DPO: input messages + preferred output)."""
    if "messages" in ex:
        return ex
    inp = ex.get("input") or {}
    v = {"messages": list(inp.get("messages") or []) + list(ex.get("preferred_output") or ex.get("preferred_completion") or [])}
    if inp.get("tools"):
        v["tools"] = inp["tools"]
    return v


class Checker:
    """Streaming checker: ``feed`` records, then ``finish()`` returns the :class:`Report`."""

    def __init__(self, path: str = "<memory>", *, counter: TokenCounter | None = None, max_tokens: int | None = None,
                 method: str = "supervised", params: float | str | None = None, epochs: int | None = None,
                 per_example: bool = False, batch_size: int = 1024, fast: bool = True):
        if method not in ("supervised", "dpo", "auto"):
            raise ValueError("method must be 'supervised', 'dpo' or 'auto'")
        self.counter = counter
        self.method = method
        self.max_tokens = max_tokens or (counter.default_max_tokens if counter else None)
        self.params = parse_params(params) if params is not None else (parse_params(counter.name) if counter and counter.kind == "hf" else None)
        self.epochs = epochs
        self.fast = fast  # False: the plain definitions everywhere (tests compare the two)
        self._pending: tuple[list[int], Callable[[], list[Any]]] | None = None
        self._plain_plan = getattr(counter, "plain_plan", None) if fast else None
        tokens = counter.special_tokens if counter is not None else []
        self._special_sep = "\x00" if fast and not any("\x00" in t for t in tokens) else None
        self.report = Report(path, method=method, tokenizer=counter.name if counter else None, max_tokens=self.max_tokens)
        self.batch: list[tuple[int, Any]] = []  # (line, example or plain chat's counting plan)
        self.batch_size = batch_size
        self.lines = array("i")
        self.h_exact = array("q")
        self.h_norm = array("q")
        self.h_answer = array("q")
        self.tok_lines = array("i")
        self.tok_total = array("i")
        self.tok_assistant = array("i")
        self.tok_msgs = array("i")
        self.keep_per_example = per_example
        self.langs: Counter[str] = Counter()

        self.prompt_prefix: str | None = None
        self.answer_prefix: str | None = None

    def feed(self, rec: Record) -> None:
        r = self.report
        r.n_lines += 1
        if not rec.ok:
            r.add(rec.code, rec.line, rec.error)
            return
        ex = rec.data
        r.n_examples += 1
        if self.method == "auto":
            self.method = r.method = "dpo" if isinstance(ex, dict) and example_kind(ex) == "dpo" else "supervised"
        # the common example in one pass (data/plain_chat.py); any other takes the general path
        simple = plain_chat(ex) if self.fast and self.method == "supervised" else None
        problems = check_example(ex, self.method, fast=self.fast) if simple is None else plain_problems(simple[0])
        bad = False
        for code, msg in problems:
            r.add(code, rec.line, msg)
            bad = bad or r.issues[code].severity == "error"
        if bad:
            return
        r.n_valid += 1
        if simple is None:
            texts = _texts(ex)
            normalised = self._observe(rec.line, texts, [t for _, t in texts])
        else:
            normalised = self._observe(rec.line, list(zip(*simple, strict=True)), simple[1])
        if self.counter is not None:
            # a plain chat's cookbook count needs only its contents tokenized (see plain_plan)
            self.batch.append((rec.line, ex if simple is None or self._plain_plan is None
                               else self._plain_plan(*simple, normalised)))
            if len(self.batch) >= self.batch_size:
                self._count()

    def _observe(self, line: int, texts: list[tuple[str, str]], plain: list[str]) -> bool:
        """The dataset-level tallies of one valid example: its (role, text) pairs and the texts.
        Returns True when (fast mode) every text is known to be whitespace-normalised."""
        self.lines.append(line)
        h = hash(tuple(texts))
        self.h_exact.append(h)
        normalised = self.fast and not needs_ws_normalising(plain)
        if normalised:
            self.h_norm.append(h)  # normalising changes no text: the same tuple, the same hash
        else:
            self.h_norm.append(hash(tuple((ro, " ".join(t.split())) for ro, t in texts)))
        answer, first_user, dialogue = "", None, []  # last non-empty answer, first user text
        for ro, t in texts:
            if ro == "assistant":
                answer = t or answer
                dialogue.append(t)
            elif ro == "user":
                first_user = t if first_user is None else first_user
                dialogue.append(t)
        self.h_answer.append(hash(answer))
        self.prompt_prefix = common_prefix(self.prompt_prefix, first_user or "")
        self.answer_prefix = common_prefix(self.answer_prefix, answer)
        joined = "\n".join(dialogue)
        utf8 = None  # joined's UTF-8, encoded once for the scans below that need it
        if joined.isascii():
            self.langs["latin" if _LATIN.search(joined) else "other"] += 1
        elif self.fast:
            utf8 = joined.encode("utf-8", "surrogatepass")
            self.langs[script_of(joined, utf8)] += 1
        else:
            self.langs[script_of_plain(joined)] += 1
        if len(answer) > LONG_ANSWER_CHARS:
            self.report.add("long_answer", line, f"assistant answer is {len(answer):,} characters")
        head = joined[:2000]  # prepare_data's heuristic, on the first 2,000 characters
        up = count_ascii_upper(head, utf8 if len(joined) <= 2000 else None)
        if up >= 20 and up * 2 > len(_LOWER.findall(head)):
            self.report.add("uppercase_heavy", line, "more than a third of the letters are uppercase")
        rx = self.counter.special_regex if self.counter is not None else None
        # one search over all the texts finds nothing in most examples; the separator cannot be
        # part of a match (checked in __init__), so a match there is a match in one text
        if rx is not None and (self._special_sep is None or rx.search(self._special_sep.join(plain))):
            for t in plain:
                m = rx.search(t)
                if m:
                    self.report.add("special_token", line, f"content contains the special token {m.group(0)}")
                    break
        return normalised

    def _count(self, *, wait: bool = False) -> None:
        """Count the pending batch. With a counter that can ``submit`` (tiktoken), a batch is
        tokenized on a background thread while this one parses and checks the next batch: the
        encoder runs as one call per batch without the GIL, so the two overlap fully. Counts are
        applied in file order; ``wait`` applies all of them."""
        if self.batch and self.counter is not None:
            lines = [ln for ln, _ in self.batch]
            if self._plain_plan is not None:  # examples, and the plans of plain chats (fast mode, tiktoken)
                plan = self.counter.plan
                items = [x if type(x) is tuple else plan(counting_view(x)) for _, x in self.batch]
            else:
                items = [counting_view(ex) for _, ex in self.batch]
            self.batch = []
            self.settle()
            if self._plain_plan is not None:
                self._pending = (lines, self.counter.submit_plans(items))
            elif self.fast and hasattr(self.counter, "submit"):
                self._pending = (lines, self.counter.submit(items))
            else:
                self._apply(lines, self.counter.count_batch(items))
        if wait:
            self.settle()

    def settle(self) -> None:
        """Apply the counts of the batch being tokenized in the background, if any."""
        if self._pending is not None:
            lines, result = self._pending
            self._pending = None
            self._apply(lines, result())

    def _apply(self, lines: list[int], counts: list[Any]) -> None:
        for line, c in zip(lines, counts, strict=True):
            if c.error:
                self.report.add("chat_template_error", line, c.error[:300])
                continue
            self.tok_lines.append(line)
            self.tok_total.append(c.total)
            self.tok_assistant.append(c.assistant)
            self.tok_msgs.append(c.messages)
            if self.max_tokens and c.total > self.max_tokens:
                self.report.add("too_many_tokens", line, f"{c.total:,} tokens > {self.max_tokens:,}; it would be truncated")

    # -- parallel checks (data/parallel.py): each worker checks a slice, the parent merges ---------
    _ARRAYS = ("lines", "h_exact", "h_norm", "h_answer", "tok_lines", "tok_total", "tok_assistant", "tok_msgs")

    def export(self) -> dict[str, Any]:
        """This checker's per-slice state (after ``_count``), compact and picklable."""
        self._count(wait=True)
        r = self.report
        return {"n_lines": r.n_lines, "n_examples": r.n_examples, "n_valid": r.n_valid, "issues": r.issues,
                "arrays": {name: getattr(self, name).tobytes() for name in self._ARRAYS}, "langs": self.langs,
                "prompt_prefix": self.prompt_prefix, "answer_prefix": self.answer_prefix,
                "valid_seen": bool(len(self.lines))}

    def merge(self, part: dict[str, Any]) -> None:
        """Append the state of the next slice (slices merged in file order give the sequential result:
        every issue's lines are kept in file order, up to the same caps)."""
        r = self.report
        r.n_lines += part["n_lines"]
        r.n_examples += part["n_examples"]
        r.n_valid += part["n_valid"]
        for code, issue in part["issues"].items():
            mine = r.issues.get(code)
            if mine is None:
                r.issues[code] = issue
                continue
            mine.lines.extend(issue.lines[: max(0, MAX_LINES - len(mine.lines))])
            mine.samples.extend(issue.samples[: max(0, MAX_SAMPLES - len(mine.samples))])
            mine.count += issue.count
        for name in self._ARRAYS:
            getattr(self, name).frombytes(part["arrays"][name])
        self.langs.update(part["langs"])
        if part["valid_seen"]:
            self.prompt_prefix = common_prefix(self.prompt_prefix, part["prompt_prefix"])
            self.answer_prefix = common_prefix(self.answer_prefix, part["answer_prefix"])

    def _duplicates(self) -> None:
        if len(self.lines) < 2:
            return
        lines = np.frombuffer(self.lines, dtype=np.int32)
        exact = np.frombuffer(self.h_exact, dtype=np.int64)
        norm = np.frombuffer(self.h_norm, dtype=np.int64)
        exact_dups: set[int] = set()
        for code, h in (("duplicate_example", exact), ("near_duplicate_example", norm)):
            order = np.argsort(h, kind="stable")
            sh = h[order]
            same = np.nonzero(sh[1:] == sh[:-1])[0] + 1
            if not len(same):
                continue
            # index of the first member of each run, for "duplicate of line N"
            run_start = np.maximum.accumulate(np.where(np.r_[True, sh[1:] != sh[:-1]], np.arange(len(sh)), 0))
            hits = sorted((int(lines[order[i]]), int(lines[order[run_start[i]]])) for i in same)
            for ln, first in hits:
                if code == "duplicate_example":
                    exact_dups.add(ln)
                elif ln in exact_dups:
                    continue
                self.report.add(code, ln, f"duplicate of line {first}")

    def finish(self) -> Report:
        self._count(wait=True)
        r = self.report
        if r.n_lines == 0:
            r.add("empty_file", None, "the file holds no examples")
            r.unusable = True
            return r
        if r.n_examples == 0:
            r.unusable = True  # not a single parseable JSON line
            return r
        n = r.n_valid
        self._duplicates()
        if len(self.h_answer) >= 2 and len(np.unique(np.frombuffer(self.h_answer, dtype=np.int64))) == 1:
            r.add("identical_answers", None, f"all {len(self.h_answer)} assistant answers are identical")
        if r.n_examples < MIN_EXAMPLES:
            r.add("too_few_examples", None, f"the file has {r.n_examples} examples; at least {MIN_EXAMPLES} are required")
        elif r.n_examples < 100:
            r.add("few_examples", None, f"{r.n_examples} examples; a few hundred usually work better")
        if n >= 2 and self.prompt_prefix and len(self.prompt_prefix) > 12:
            r.add("common_prompt_prefix", None, f"every first user message starts with {self.prompt_prefix[:80]!r}")
        if n >= 2 and self.answer_prefix and len(self.answer_prefix) >= 5:
            r.add("common_answer_prefix", None, f"every final answer starts with {self.answer_prefix[:80]!r}")
        langs = {k: v for k, v in self.langs.items() if k != "other"}
        if len(langs) > 1 and sorted(langs.values())[-2] >= max(1, 0.02 * n):
            summary = ", ".join(f"{k} {v}" for k, v in self.langs.most_common())
            r.add("mixed_languages", None, f"examples by script: {summary}")
        stats: dict[str, Any] = {"languages": dict(self.langs.most_common())}
        if self.counter is not None and len(self.tok_total):
            total = np.frombuffer(self.tok_total, dtype=np.int32)
            stats.update({
                "examples_counted": int(len(total)),
                "tokens": distribution(total), "assistant_tokens": distribution(np.frombuffer(self.tok_assistant, dtype=np.int32)),
                "messages": distribution(np.frombuffer(self.tok_msgs, dtype=np.int32)),
                "over_limit": int((total > (self.max_tokens or 1 << 62)).sum()),
                "token_histogram": histogram(total),
                "counting": ("cookbook formula with " if self.counter.kind == "openai" else "chat template of ") + self.counter.name,
            })
            r.estimate = estimate(n_examples=n, lengths=total, max_tokens=self.max_tokens or 1 << 62,
                                  params=self.params, epochs=self.epochs, method=self.method)
            if self.keep_per_example:
                r.per_example = [{"line": int(a), "tokens": int(b), "assistant_tokens": int(c), "messages": int(d)}
                                 for a, b, c, d in zip(self.tok_lines, self.tok_total, self.tok_assistant, self.tok_msgs, strict=True)]
        r.stats = stats
        return r


def check_records(records: Iterable[Record], *, path: str = "<memory>", progress: Callable[[int], None] | None = None,
                  **kw: Any) -> Report:
    ch = Checker(path, **kw)
    for rec in records:
        ch.feed(rec)
    return ch.finish()
