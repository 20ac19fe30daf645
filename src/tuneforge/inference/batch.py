"""One base model's running batch: rows, their shared KV cache and attention mask.

Continuous batching with left padding: every row's cache is right-aligned in one ``DynamicCache``;
newly admitted rows are prefilled together and merged in by left-padding the shorter side, finished
rows are dropped by indexing, and columns that became padding for every row are trimmed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from tuneforge.inference.sampling import SamplerState, SamplingParams, TokenLogprob
from tuneforge.inference.tokens import Detokenizer, StopText

# -- what callers submit and receive ---------------------------------------------------------------


@dataclass
class GenerationRequest:
    base_model: str
    adapter_dir: Path | None
    prompt_ids: list[int]
    params: SamplingParams
    n: int = 1
    # 0: interactive (an HTTP client waits); 1: background (eval runs, batches) — admitted after every
    # waiting interactive request, so offline work never delays a chat
    priority: int = 0


@dataclass
class Delta:
    index: int
    text: str
    logprobs: list[TokenLogprob]


@dataclass
class Finish:
    index: int
    reason: str  # "stop" | "length"
    completion_tokens: int
    text: str  # the choice's whole text (stop strings removed)
    logprobs: list[TokenLogprob]  # every released logprob of the choice


@dataclass
class Failure:
    error: Exception


class RequestHandle:
    """Ties one submitted request to its sink (a thread-safe callback) and carries its cancellation."""

    def __init__(self, request: GenerationRequest, sink):
        self.request = request
        self._sink = sink
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def emit(self, event) -> None:
        try:
            self._sink(event)
        except RuntimeError:  # the consumer's event loop is gone (shutdown, disconnect)
            self.cancel()


# -- rows ------------------------------------------------------------------------------------------


@dataclass
class Row:
    handle: RequestHandle
    index: int
    adapter: str
    sampler: SamplerState
    detok: Detokenizer
    stop: StopText
    pos: int  # next position id (= real tokens in this row's cache)
    generated: int = 0
    next_token: int | None = None
    finished: bool = False
    pending_lp: list[tuple[TokenLogprob, int]] = field(default_factory=list)  # (logprob, text end)
    released_lp: list[TokenLogprob] = field(default_factory=list)

    @property
    def params(self) -> SamplingParams:
        return self.sampler.params

    def take_logprobs(self, upto: int, final: bool = False) -> list[TokenLogprob]:
        """Logprob entries whose token text lies within the released text (final: that starts in it)."""
        out, keep, start = [], [], 0
        for lp, end in self.pending_lp:
            if end <= upto or (final and start < upto):
                out.append(lp)
            elif not final:
                keep.append((lp, end))
            start = end
        self.pending_lp = keep
        self.released_lp.extend(out)
        return out


# -- the batch -------------------------------------------------------------------------------------


class Batch:
    def __init__(self):
        self.rows: list[Row] = []
        self.cache = None
        self.mask: torch.Tensor | None = None  # [B, T] 1 = real token

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    def mergeable(cache) -> bool:
        """Only plain full-attention layers can be padded and concatenated safely."""
        from transformers.cache_utils import DynamicLayer

        return all(type(layer) in (DynamicLayer, _roomy_class()) for layer in getattr(cache, "layers", [None]))

    @staticmethod
    def give_room(cache) -> None:
        """Turn the plain layers of a fresh prefill cache into head-room layers (see ``_roomy_class``)."""
        from transformers.cache_utils import DynamicLayer

        roomy = _roomy_class()
        for layer in getattr(cache, "layers", []):
            if type(layer) is DynamicLayer:
                layer.__class__ = roomy

    def add(self, rows: list[Row], cache, mask: torch.Tensor) -> None:
        if not self.rows:
            self.rows, self.cache, self.mask = list(rows), cache, mask
            return
        t_old, t_new = self.mask.shape[1], mask.shape[1]
        t = max(t_old, t_new)
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_pad_left(old.keys, t - t_old), _pad_left(new.keys, t - t_new)], dim=0)
            old.values = torch.cat([_pad_left(old.values, t - t_old), _pad_left(new.values, t - t_new)], dim=0)
        self.mask = torch.cat([F.pad(self.mask, (t - t_old, 0)), F.pad(mask, (t - t_new, 0))], dim=0)
        self.rows.extend(rows)

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep`` (drop finished/cancelled ones) and trim all-padding columns."""
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache, self.mask = [], None, None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.mask.device)
        self.rows = [self.rows[i] for i in keep]
        self.mask = self.mask[index]
        used = self.mask.any(dim=0).nonzero()
        first = int(used[0]) if len(used) else 0
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, first:, :]
            layer.values = layer.values[index, :, first:, :]
        self.mask = self.mask[:, first:]


_ROOMY = None


def _roomy_class():
    """``DynamicLayer`` with spare columns: its keys and values are views into buffers longer than the
    cache, so a decode step writes one column in place. The plain layer concatenates (copies the whole
    cache of every layer) on every step, ~8 % of a 16-row SmolLM2 step on CPU. When the room is used up,
    or after ``Batch.add``/``Batch.keep`` replaced the tensors, the next update moves them into a new
    buffer with room for a quarter more columns (at least 16, at most 256). Same values, same results."""
    global _ROOMY
    if _ROOMY is None:
        from transformers.cache_utils import DynamicLayer

        class RoomyLayer(DynamicLayer):
            def update(self, key_states, value_states, *args, **kwargs):
                if not self.is_initialized:
                    self.lazy_initialization(key_states, value_states)
                old = self.keys.shape[-2] if self.keys.dim() == 4 else 0
                new = old + key_states.shape[-2]
                buffers = getattr(self, "_room", None)
                if (buffers is None or buffers[2] is not self.keys or new > buffers[0].shape[-2]
                        or buffers[0].shape[0] != key_states.shape[0]):
                    self._room = None  # let the old buffers go before the new ones are allocated
                    buffers = self._room = self._move(old, new + min(256, max(16, new // 4)), key_states)
                keys, values, _ = buffers
                keys[:, :, old:new].copy_(key_states)
                values[:, :, old:new].copy_(value_states)
                self.keys, self.values = keys[:, :, :new], values[:, :, :new]
                self._room = (keys, values, self.keys)
                return self.keys, self.values

            def _move(self, old, capacity, like):
                shape = (like.shape[0], like.shape[1], capacity, like.shape[3])
                keys = like.new_empty(shape)
                values = like.new_empty(shape)
                if old:
                    keys[:, :, :old].copy_(self.keys)
                    values[:, :, :old].copy_(self.values)
                return keys, values, None

        _ROOMY = RoomyLayer
    return _ROOMY


def _pad_left(x: torch.Tensor, n: int) -> torch.Tensor:
    return F.pad(x, (0, 0, n, 0)) if n else x


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input ids, attention mask and position ids for a left-padded prefill."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, prompt in enumerate(prompts):
        ids[r, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[r, width - len(prompt):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)
