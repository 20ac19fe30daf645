"""Request checks shared by chat and legacy completions: limits, stop lists, budgets, logprob shapes."""

from __future__ import annotations

import hashlib

from tuneforge.errors import InvalidRequest
from tuneforge.inference.base_info import BaseInfo
from tuneforge.inference.grammar import Constraint
from tuneforge.inference.sampling import SamplingParams, TokenLogprob

MAX_STOP = 4


def stop_list(stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else list(stop)
    if len(stops) > MAX_STOP:
        raise InvalidRequest(f"Invalid 'stop': at most {MAX_STOP} stop sequences are allowed, got {len(stops)}.",
                             param="stop")
    if any(not isinstance(s, str) or not s for s in stops):
        raise InvalidRequest("Invalid 'stop': stop sequences must be non-empty strings.", param="stop")
    return tuple(stops)


def logit_bias(bias: dict | None, info: BaseInfo) -> dict[int, float] | None:
    if not bias:
        return None
    out = {}
    for key, value in bias.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise InvalidRequest(f"Invalid key in 'logit_bias': {key!r} is not a token id.", param="logit_bias") from None
        if not 0 <= token < info.vocab_size:
            raise InvalidRequest(f"Invalid key in 'logit_bias': token id {token} is outside this model's vocabulary "
                                 f"(0..{info.vocab_size - 1}).", param="logit_bias")
        if not isinstance(value, int | float) or not -100 <= value <= 100:
            raise InvalidRequest("Invalid value in 'logit_bias': biases must be numbers between -100 and 100.",
                                 param="logit_bias")
        out[token] = float(value)
    return out


def completion_budget(requested: int | None, prompt_tokens: int, info: BaseInfo, default_max: int | None, *,
                      what: str = "messages", param: str = "messages") -> int:
    """Tokens the completion may use; 400 ``context_length_exceeded`` rather than any truncation."""
    context = info.context_length
    if requested is not None and prompt_tokens + requested > context:
        raise InvalidRequest(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + requested} tokens ({prompt_tokens} in the {what}, {requested} in the completion). "
            f"Please reduce the length of the {what} or completion.", param=param, code="context_length_exceeded")
    if prompt_tokens >= context:
        raise InvalidRequest(
            f"This model's maximum context length is {context} tokens. However, your {what} resulted in "
            f"{prompt_tokens} tokens. Please reduce the length of the {what}.", param=param,
            code="context_length_exceeded")
    if requested is not None:
        return requested
    return context - prompt_tokens if default_max is None else min(default_max, context - prompt_tokens)


def sampling_params(*, max_tokens: int, temperature, top_p, seed, presence_penalty, frequency_penalty, bias,
                    stop, logprobs: bool, top_logprobs: int, info: BaseInfo,
                    constraint: Constraint | None = None) -> SamplingParams:
    if seed is not None and not -(2**63) <= seed < 2**63:
        raise InvalidRequest("Invalid 'seed': must fit in a signed 64-bit integer.", param="seed")
    return SamplingParams(
        max_tokens=max_tokens, temperature=1.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p), seed=seed % (2**63) if seed is not None else None,
        presence_penalty=float(presence_penalty or 0.0), frequency_penalty=float(frequency_penalty or 0.0),
        logit_bias=logit_bias(bias, info), stop=stop_list(stop), logprobs=logprobs, top_logprobs=top_logprobs,
        constraint=constraint)


def fingerprint(base_path: str, adapter_key: str | None) -> str:
    """Changes whenever the weights behind a model id change (pairs with ``seed`` for reproducibility)."""
    return "fp_" + hashlib.sha1(f"{base_path}|{adapter_key}".encode()).hexdigest()[:10]


def token_text(info: BaseInfo, token: int) -> tuple[str, list[int]]:
    raw = info.table.token_bytes[token] if token < len(info.table.token_bytes) else b""
    if not raw:  # special tokens: their literal text
        return info.tokenizer.decode([token], skip_special_tokens=False), []
    return raw.decode("utf-8", errors="replace"), list(raw)


def chat_logprobs(info: BaseInfo, entries: list[TokenLogprob]) -> list[dict]:
    out = []
    for entry in entries:
        text, raw = token_text(info, entry.token_id)
        tops = []
        for token, logprob in entry.top:
            t_text, t_raw = token_text(info, token)
            tops.append({"token": t_text, "logprob": logprob, "bytes": t_raw})
        out.append({"token": text, "logprob": entry.logprob, "bytes": raw, "top_logprobs": tops})
    return out


def legacy_logprobs(info: BaseInfo, entries: list[TokenLogprob], offset: int) -> dict:
    """/v1/completions shape: parallel lists plus character offsets into the returned text."""
    tokens, token_logprobs, tops, offsets = [], [], [], []
    for entry in entries:
        text, _ = token_text(info, entry.token_id)
        tokens.append(text)
        token_logprobs.append(entry.logprob)
        tops.append({token_text(info, t)[0]: lp for t, lp in entry.top})
        offsets.append(offset)
        offset += len(text)
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops, "text_offset": offsets}
