"""Choosing the next token for one row: penalties, logit bias, temperature, top-p, a seeded generator,
logprobs, and the row's grammar constraint (``inference.grammar``: JSON mode, JSON schemas, tool calls).

Each row owns a ``torch.Generator`` seeded from the request, so a row's random draws do not depend
on which other requests share its batch (same seed -> same text).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from tuneforge.inference.grammar import Constraint, GrammarState
from tuneforge.inference.tokens import TokenTable


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
    constraint: Constraint | None = None

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
    grammar: GrammarState | None = None

    @classmethod
    def create(cls, params: SamplingParams, seed: int | None, vocab_size: int = 0) -> SamplerState:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(seed if seed is not None else random.SystemRandom().randrange(2**63))
        grammar = GrammarState.create(params.constraint, vocab_size) if params.constraint is not None else None
        return cls(params, gen, grammar=grammar)


def choose(logits: torch.Tensor, state: SamplerState, table: TokenTable, eos_ids: set[int],
           remaining: int) -> tuple[int, TokenLogprob | None]:
    """Pick the next token from one row's fp32 logits ``[V]``; ``remaining`` counts this token too."""
    params = state.params
    logits = logits.float()
    info = None
    if params.logprobs:
        logp = torch.log_softmax(logits, dim=-1)
    grammar = state.grammar
    token = grammar.forced(remaining, table.single_byte_token) if grammar is not None else None
    if token is None:
        x = _adjust(logits, state, params)
        if grammar is not None:
            x = grammar.mask(x)
        token = _draw(x, state, params)
        if grammar is not None:
            token = grammar.settle(token, remaining, table.single_byte_token)
    if grammar is not None:
        grammar.accept(token, table.token_bytes[token] if token < len(table.token_bytes) else b"")
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
