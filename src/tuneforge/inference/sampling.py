"""Choosing the next token for one row: penalties, logit bias, temperature, top-p, a seeded generator,
logprobs, and the JSON constraint.

Each row owns a ``torch.Generator`` seeded from the request, so a row's random draws do not depend
on which other requests share its batch (same seed -> same text).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from tuneforge.inference.jsonmode import JsonState
from tuneforge.inference.tokens import TokenTable

_MAX_REJECTIONS = 32  # sampled-but-invalid JSON tokens before scanning candidates in order
_SCAN = 512  # candidates scanned in order after that, before closing the object


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    json_object: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 1e-5


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]]  # (token id, logprob), best first


@dataclass
class SamplerState:
    params: SamplingParams
    generator: torch.Generator
    counts: dict[int, int] = field(default_factory=dict)  # generated token -> times
    json: JsonState | None = None
    forced: list[int] = field(default_factory=list)  # tokens that close a JSON object when out of budget

    @classmethod
    def create(cls, params: SamplingParams, seed: int | None) -> SamplerState:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed if seed is not None else random.SystemRandom().randrange(2**63))
        return cls(params, gen, json=JsonState() if params.json_object else None)


def choose(logits: torch.Tensor, state: SamplerState, table: TokenTable, eos_ids: set[int],
           remaining: int) -> tuple[int, TokenLogprob | None]:
    """Pick the next token from one row's fp32 logits ``[V]``; ``remaining`` counts this token too."""
    params = state.params
    logits = logits.float()
    info = None
    if params.logprobs:
        logp = torch.log_softmax(logits, dim=-1)
    json_state = state.json
    if json_state is not None and not state.forced and not json_state.done:
        closing = json_state.completion()
        if remaining <= len(closing):  # just enough budget left to close the object: do it now
            state.forced = [table.single_byte_token[b] for b in closing]
    if state.forced:
        token = state.forced.pop(0)
        json_state.feed(table.token_bytes[token])
    elif json_state is not None and json_state.done:
        token = min(eos_ids)  # the object is complete: the answer ends here
    else:
        x = _adjust(logits, state, params)
        token = _constrained(x, state, table) if json_state is not None else _draw(x, state, params)
    state.counts[token] = state.counts.get(token, 0) + 1
    if params.logprobs:
        top = []
        if params.top_logprobs:
            values, ids = torch.topk(logp, params.top_logprobs)
            top = list(zip(ids.tolist(), values.tolist(), strict=True))
        info = TokenLogprob(token, float(logp[token]), top)
    return token, info


def _adjust(logits: torch.Tensor, state: SamplerState, params: SamplingParams) -> torch.Tensor:
    x = logits
    if params.logit_bias:
        x = x.clone()
        ids = torch.tensor(list(params.logit_bias), dtype=torch.long)
        x[ids] += torch.tensor(list(params.logit_bias.values()), dtype=x.dtype)
    if state.counts and (params.presence_penalty or params.frequency_penalty):
        x = x.clone() if x is logits else x
        ids = torch.tensor(list(state.counts), dtype=torch.long)
        counts = torch.tensor(list(state.counts.values()), dtype=x.dtype)
        # OpenAI's formula: mu[j] - c[j] * alpha_frequency - (c[j] > 0) * alpha_presence
        x[ids] -= counts * params.frequency_penalty + params.presence_penalty
    return x


def _draw(x: torch.Tensor, state: SamplerState, params: SamplingParams) -> int:
    if params.greedy:
        return int(torch.argmax(x))
    probs = torch.softmax(x / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        keep = cumulative - sorted_probs < max(params.top_p, 1e-8)  # always keeps the top token
        kept = torch.zeros_like(probs)
        kept[order[keep]] = sorted_probs[keep]
        probs = kept
    return int(torch.multinomial(probs, 1, generator=state.generator))


def _constrained(x: torch.Tensor, state: SamplerState, table: TokenTable) -> int:
    """Sample among tokens that keep the output a JSON prefix: mask by first byte (vectorised), then
    reject-and-resample full checks, which samples exactly from the distribution restricted to valid tokens."""
    json_state, params = state.json, state.params
    allowed_first = _allowed_first_bytes(json_state)
    first = table.first_byte
    mask = allowed_first[first.clamp(min=0).long()] & (first >= 0)
    x = x.masked_fill(~mask, -math.inf)
    for _ in range(_MAX_REJECTIONS):
        if not torch.isfinite(x).any():
            break
        token = _draw(x, state, params)
        trial = json_state.copy()
        if trial.feed(table.token_bytes[token]):
            state.json = trial
            return token
        x[token] = -math.inf
    if torch.isfinite(x).any():
        k = min(_SCAN, int(torch.isfinite(x).sum()))
        for token in torch.topk(x, k).indices.tolist():
            trial = json_state.copy()
            if trial.feed(table.token_bytes[token]):
                state.json = trial
                return token
    # Nothing valid among the likely tokens: close the object byte by byte.
    state.forced = [table.single_byte_token[b] for b in json_state.completion()]
    token = state.forced.pop(0)
    state.json.feed(table.token_bytes[token])
    return token


def _allowed_first_bytes(json_state: JsonState) -> torch.Tensor:
    """A cheap superset of the bytes that may come next (exact checks follow per candidate)."""
    allowed = torch.zeros(256, dtype=torch.bool)
    for b in range(256):
        if json_state.copy()._byte(b):
            allowed[b] = True
    return allowed
