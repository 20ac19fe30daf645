"""What the model sees for a run, within its context window, and the citations in its answer.

Budget (in the model's own tokens): the context length minus the completion budget is the prompt
budget. The system part (instructions, mask, citation rule) is fixed; retrieved chunks take at most
``SOURCES_SHARE`` of what remains, best-ranked first; the conversation gets the rest — newest turns
verbatim, going back until the budget is used. Turns that no longer fit are condensed into the
thread's running summary (stored on the thread with the id of the last message it covers), which
is extractive: a line per older turn with its first sentence. It costs no model call, never
invents anything, and is extended incrementally as the thread grows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tuneforge.retrieval.keyword import tokenize

SOURCES_SHARE = 0.5
SUMMARY_SHARE = 0.15
SUMMARY_LINE_CHARS = 160
CITE_RULE = ("Answer the user's question using the numbered sources below. Cite the source you used with its "
             "number in square brackets, like [1]. If the sources do not contain the answer, say so.")
_MARKER = re.compile(r"【(\d{1,2})(?:[:†][^】]*)?】|\[(\d{1,2})(?:†[^\]]*)?\]")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")


@dataclass
class Turn:
    id: str
    role: str
    text: str


@dataclass
class Built:
    messages: list[dict]
    sources: list  # retrieval results shown to the model, numbered from 1
    summary: str | None
    summary_upto: str | None
    prompt_tokens: int
    dropped_turns: int = 0
    notes: list[str] = field(default_factory=list)


def summary_line(turn: Turn) -> str:
    first = _SENTENCE.split(turn.text.strip(), maxsplit=1)[0] if turn.text.strip() else ""
    if len(first) > SUMMARY_LINE_CHARS:
        first = first[:SUMMARY_LINE_CHARS].rstrip() + "…"
    return f"- {turn.role}: {first}"


def _fit_lines(lines: list[str], budget: int, count: Callable[[str], int]) -> list[str]:
    """The newest lines whose total fits ``budget`` tokens."""
    kept: list[str] = []
    used = 0
    for line in reversed(lines):
        cost = count(line) + 1
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return list(reversed(kept))


def _truncate(text: str, budget: int, count: Callable[[str], int]) -> str:
    if count(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # longest prefix within budget
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def build(*, system_parts: list[str], few_shot: list[dict], turns: list[Turn], results: list,
          summary: str | None, summary_upto: str | None, budget: int,
          count: Callable[[str], int], count_messages: Callable[[list[dict]], int]) -> Built:
    """Assemble chat messages for a run; ``count`` counts a text's tokens, ``count_messages`` a
    rendered prompt's (chat-template overhead included)."""
    notes: list[str] = []
    system = "\n\n".join(p.strip() for p in system_parts if p and p.strip())
    if results:
        system = f"{system}\n\n{CITE_RULE}" if system else CITE_RULE
    fixed = count_messages([{"role": "system", "content": system or "."}, *few_shot])
    room = max(0, budget - fixed)
    # sources: best-ranked first, each whole, within their share
    shown, block = [], []
    left = int(room * SOURCES_SHARE) if results else 0
    for result in results:
        entry = f"[{len(shown) + 1}] ({result.filename})\n{result.text}"
        cost = count(entry) + 2
        if cost > left:
            if shown:
                continue
            entry = _truncate(entry, max(0, left - 2), count)  # the best chunk, cut, beats nothing
            cost = left
            if not entry:
                break
        shown.append(result)
        block.append(entry)
        left -= cost
    if block:
        system = f"{system}\n\nSources:\n\n" + "\n\n".join(block)
    room = max(0, budget - count_messages([{"role": "system", "content": system}, *few_shot]))
    # conversation: newest turns verbatim; older ones join the summary
    summarized_ids: set[str] = set()
    if summary_upto is not None:
        for turn in turns:
            summarized_ids.add(turn.id)
            if turn.id == summary_upto:
                break
        else:
            summarized_ids = set()
    pending = [t for t in turns if t.id not in summarized_ids]
    summary_budget = int(room * SUMMARY_SHARE)
    costs = [count(t.text) + 8 for t in pending]  # + the chat template's role markers
    avail = room - (summary_budget if summary or sum(costs) > room else 0)
    verbatim: list[Turn] = []
    used = 0
    for turn, cost in zip(reversed(pending), reversed(costs), strict=True):
        if used + cost > avail:
            if not verbatim:  # the latest message always goes in, cut to fit
                verbatim.append(Turn(turn.id, turn.role, _truncate(turn.text, max(16, avail - 8), count)))
                notes.append("latest message truncated")
            break
        verbatim.append(turn)
        used += cost
    verbatim.reverse()
    # Chat templates expect the verbatim part to open with a user turn: a leading assistant turn is
    # summarized instead.
    while len(verbatim) > 1 and verbatim[0].role == "assistant":
        verbatim.pop(0)
    older = pending[: len(pending) - len(verbatim)]
    lines = summary.splitlines() if summary else []
    if older:
        lines += [summary_line(t) for t in older]
        summary_upto = older[-1].id
    lines = _fit_lines(lines, summary_budget, count)
    new_summary = "\n".join(lines) or None
    if new_summary:
        system = f"{system}\n\nEarlier in this conversation (summary):\n{new_summary}"
    messages = [{"role": "system", "content": system}] if system else []
    messages += few_shot
    messages += [{"role": t.role, "content": t.text} for t in verbatim]
    return Built(messages, shown, new_summary, summary_upto, count_messages(messages), len(older), notes)


def citations(text: str, sources: list) -> tuple[str, list[tuple[int, int, int]]]:
    """Find the sources an answer used: ``(text, [(start, end, source_index)])``.

    Markers the model wrote ([1], 【1】, [1†name]) are taken as they are. A model that cites nothing
    (small models rarely follow the rule) gets one marker appended for the source whose words its
    answer shares most — the top-ranked one when it shares none.
    """
    found = []
    for m in _MARKER.finditer(text):
        n = int(m.group(1) or m.group(2))
        if 1 <= n <= len(sources):
            found.append((m.start(), m.end(), n - 1))
    if found or not sources:
        return text, found
    answer = set(tokenize(text))
    best, best_overlap = 0, 0.0
    for i, source in enumerate(sources):
        overlap = len(answer & set(tokenize(source.text))) / (len(answer) or 1)
        if overlap > best_overlap + 1e-9:
            best, best_overlap = i, overlap
    marker = f"【{best + 1}†{sources[best].filename}】"
    sep = "" if not text or text.endswith((" ", "\n")) else " "
    start = len(text) + len(sep)
    return text + sep + marker, [(start, start + len(marker), best)]
