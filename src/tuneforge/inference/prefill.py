"""Prefill planning: which newcomers share a pass, and which prompt prefixes need no pass at all.

* ``prefill_groups``: requests arriving together are prefilled in groups of at most ``budget`` padded
  tokens, shortest prompts first; the engine streams each group's first tokens as soon as its pass ends
  (chunked prefill as vLLM/TGI schedule it), so the mean time to first token of a burst is about half
  of one pass over every prompt, and prompts of similar length pad less.
* ``PrefixCache``: the KV of recent prompts, per adapter. Chat prompts of one deployment start alike
  (the chat template's system prompt is ~24 tokens of SmolLM2's ~36-token prompts), so a newcomer whose
  prompt starts with a cached one is prefilled from where they part; the keys and values of a token
  depend only on the tokens before it, so the cached columns are what a full pass computes (up to float
  rounding of a different batch shape, as with any batching).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

MIN_REUSE = 16  # shorter shared prefixes are not worth a separate cache


def prefill_groups(rows: list, budget: int) -> list[list]:
    """Split newcomer rows into passes of at most ``budget`` padded tokens (0: one pass). A request's n
    rows stay together; a request longer than the budget gets a pass of its own; interactive requests
    (priority 0) before background ones, then shortest prompts first."""
    if not rows:
        return []
    if not budget:
        return [rows]
    requests: dict[int, list] = {}
    for row in rows:
        requests.setdefault(id(row.handle), []).append(row)
    ordered = sorted(requests.values(), key=lambda rs: (rs[0].handle.request.priority,
                                                        len(rs[0].handle.request.prompt_ids)))
    groups: list[list] = []
    current: list = []
    width = 0  # the longest prompt of the current group: every row pads to it
    for request_rows in ordered:
        length = len(request_rows[0].handle.request.prompt_ids)
        if current and (len(current) + len(request_rows)) * max(width, length) > budget:
            groups.append(current)
            current, width = [], 0
        current.extend(request_rows)
        width = max(width, length)
    groups.append(current)
    return groups


@dataclass
class _Entry:
    tokens: tuple[int, ...]
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, [1, kv heads, len(tokens), head dim]
    nbytes: int


class PrefixCache:
    """Least-recently-used KV of whole prompts, keyed by (adapter, tokens), within ``budget_bytes``."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.used = 0
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def plan(self, adapters: list[str], prompts: list[list[int]]) -> tuple[int, list[_Entry] | None]:
        """How many leading tokens every prompt can take from the cache (the same count for all, at least
        ``MIN_REUSE``, always leaving one token to prefill), and the entry each row takes them from."""
        reuse, picks = None, []
        for adapter, prompt in zip(adapters, prompts, strict=True):
            best, entry = 0, None
            for (owner, _), candidate in self._entries.items():
                if owner == adapter:
                    common = _common(candidate.tokens, prompt, len(prompt) - 1)
                    if common > best:
                        best, entry = common, candidate
            if best < MIN_REUSE:
                return 0, None
            reuse = best if reuse is None else min(reuse, best)
            picks.append(entry)
        for adapter, entry in zip(adapters, picks, strict=True):
            self._entries.move_to_end((adapter, entry.tokens))
        return reuse or 0, picks

    @staticmethod
    def past(entries: list[_Entry], length: int):
        """A ``DynamicCache`` holding the first ``length`` columns of each row's entry."""
        from transformers.cache_utils import DynamicCache

        layers = len(entries[0].kv)
        return DynamicCache([
            (torch.cat([e.kv[i][0][:, :, :length] for e in entries]),
             torch.cat([e.kv[i][1][:, :, :length] for e in entries])) for i in range(layers)])

    def store(self, adapters: list[str], prompts: list[list[int]], cache, mask: torch.Tensor) -> None:
        """Keep each row's prompt KV (its real columns of a prefill ``cache``; ``mask`` [B, T], 1 = real)."""
        for r, (adapter, prompt) in enumerate(zip(adapters, prompts, strict=True)):
            key = (adapter, tuple(prompt))
            if key in self._entries:
                self._entries.move_to_end(key)
                continue
            if len(prompt) <= MIN_REUSE:
                continue
            columns = mask[r].bool()
            kv = [(layer.keys[r:r + 1][:, :, columns].contiguous(), layer.values[r:r + 1][:, :, columns].contiguous())
                  for layer in cache.layers]
            nbytes = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
            if nbytes > self.budget:
                continue
            while self.used + nbytes > self.budget:
                _, dropped = self._entries.popitem(last=False)
                self.used -= dropped.nbytes
            self._entries[key] = _Entry(key[1], kv, nbytes)
            self.used += nbytes


def _common(a, b, limit: int) -> int:
    n = min(len(a), len(b), limit)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
