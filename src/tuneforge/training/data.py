"""Turn chat examples into token ids + labels, with the loss on assistant tokens only.

The mask is computed by *offsets*, not by ``{% generation %}`` markers (most chat templates lack
them): each assistant turn's character span is found by rendering the template incrementally —
``render(messages[:i], add_generation_prompt=True)`` ends where the turn's text starts and
``render(messages[:i+1])`` ends where it stops — and every token that starts inside the span is
trained. The span runs through the template's end-of-turn marker (``<|im_end|>`` for ChatML), so
the model learns to stop. Two silent failures peers suffer are refused loudly (``TrainingDataError``):
every label masked (loss 0, nothing learnt) and an end-of-turn token that is never trained
(the model never stops talking).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100
_SENTINEL = "Zq7 sentinel answer"


class TrainingDataError(ValueError):
    """The data or the chat template cannot train a working model; the message says why."""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    turns: int = 0  # assistant turns trained
    turns_with_eot: int = 0  # ... whose trained tokens include the end-of-turn token

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class PreparedData:
    examples: list[Encoded]
    dropped: int = 0  # examples with nothing left to train (all weight 0, or truncated away)
    truncated: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)


@dataclass
class ChatFormat:
    """How one tokenizer + template renders chats, probed once."""

    tokenizer: Any
    template: str
    eot_token: str | None
    eot_id: int | None

    @classmethod
    def probe(cls, tokenizer, template: str | None = None) -> ChatFormat:
        template = template or tokenizer.chat_template
        if not template:
            raise TrainingDataError("The model's tokenizer has no chat template, so chats cannot be rendered. "
                                    "Use an instruct/chat model or register one with a chat_template.")
        fmt = cls(tokenizer, template, None, None)
        fmt.eot_token, fmt.eot_id = fmt._find_end_of_turn()
        return fmt

    def render(self, messages: list[dict], *, add_generation_prompt: bool = False, tools=None) -> str:
        return self.tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=self.template,
                                                  tokenize=False, add_generation_prompt=add_generation_prompt)

    def _find_end_of_turn(self) -> tuple[str | None, int | None]:
        """The special token the template writes right after an assistant's content."""
        msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _SENTINEL}]
        text = self.render(msgs)
        at = text.rfind(_SENTINEL)
        if at < 0:
            return None, None
        tail = text[at + len(_SENTINEL):]
        enc = self.tokenizer(tail, add_special_tokens=False)
        special = set(self.tokenizer.all_special_ids) | {
            i for i, tok in getattr(self.tokenizer, "added_tokens_decoder", {}).items() if getattr(tok, "special", False)}
        for tid in enc["input_ids"]:
            if tid in special:
                return self.tokenizer.convert_ids_to_tokens(tid), tid
        eos = self.tokenizer.eos_token_id
        if eos is not None and eos in enc["input_ids"]:
            return self.tokenizer.eos_token, eos
        return None, None

    # -- encoding --------------------------------------------------------------------------------
    def encode(self, messages: list[dict], *, tools=None, max_len: int, only_last: bool = False) -> Encoded:
        """Ids and labels for one chat; assistant turns with ``weight: 0`` are not trained."""
        clean = [{k: v for k, v in m.items() if k != "weight"} for m in messages]
        full = self.render(clean, tools=tools)
        spans: list[tuple[int, int]] = []
        last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
        for i, msg in enumerate(messages):
            if msg.get("role") != "assistant" or msg.get("weight", 1) == 0 or (only_last and i != last_assistant):
                continue
            before = self.render(clean[:i], add_generation_prompt=True, tools=tools) if i else ""
            through = self.render(clean[:i + 1], tools=tools)
            if not full.startswith(through) or not through.startswith(before):
                raise TrainingDataError(
                    "The chat template does not render conversations incrementally (a prefix of the "
                    "conversation renders differently from the start of the whole), so assistant tokens "
                    "cannot be located. Use a template that renders each turn independently.")
            end = len(through)
            while end > len(before) and through[end - 1].isspace():
                end -= 1  # the newline after <|im_end|> is template glue, not the answer
            spans.append((len(before), end))
        enc = self.tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = list(enc["input_ids"])
        offsets = enc["offset_mapping"]
        labels = [IGNORE] * len(ids)
        turns_with_eot = 0
        for start, end in spans:
            hit_eot = False
            for j, (a, b) in enumerate(offsets):
                if start <= a < end and b > a:
                    labels[j] = ids[j]
                    hit_eot = hit_eot or ids[j] == self.eot_id
            turns_with_eot += hit_eot
        truncated = len(ids) > max_len
        if truncated:  # OpenAI truncates long examples from the end
            ids, labels = ids[:max_len], labels[:max_len]
        return Encoded(ids, labels, truncated, len(spans), turns_with_eot)


def prepare_sft(fmt: ChatFormat, examples: list[dict], max_len: int, *, label: str = "training") -> PreparedData:
    out = PreparedData([])
    turns = turns_with_eot = 0
    for ex in examples:
        enc = fmt.encode(ex["messages"], tools=ex.get("tools"), max_len=max_len)
        out.truncated += enc.truncated
        if enc.n_trained == 0:
            out.dropped += 1
            continue
        if not enc.truncated:
            turns += enc.turns
            turns_with_eot += enc.turns_with_eot
        out.examples.append(enc)
    _refuse_silent_failures(fmt, out, turns, turns_with_eot, len(examples), label)
    return out


def _refuse_silent_failures(fmt: ChatFormat, out: PreparedData, turns: int, turns_with_eot: int, n: int,
                            label: str) -> None:
    if not out.examples:
        raise TrainingDataError(
            f"Every label in the {label} file is masked: no example has an assistant token to train on "
            f"({n} examples; all assistant turns have weight 0 or were truncated away). The loss would "
            "be 0 and the model would learn nothing.")
    if fmt.eot_id is None:
        raise TrainingDataError(
            "The chat template writes no end-of-turn token after an assistant's answer, so the model could "
            "never learn to stop (it would repeat itself endlessly). Use a template that ends turns with "
            "a special token (e.g. <|im_end|>).")
    if turns and turns_with_eot < turns:
        raise TrainingDataError(
            f"The end-of-turn token {fmt.eot_token!r} is not trained in {turns - turns_with_eot} of {turns} "
            "assistant turns; the model would not learn to stop and would repeat itself endlessly.")
    if out.dropped:
        out.warnings.append(f"{out.dropped} {label} example(s) have no trainable assistant token "
                            "(weight 0 everywhere, or truncated away) and are skipped.")
    if out.truncated:
        out.warnings.append(f"{out.truncated} {label} example(s) are longer than the context "
                            f"and were truncated from the end.")


@dataclass
class PreferencePair:
    chosen: Encoded
    rejected: Encoded


def dpo_messages(ex: dict) -> tuple[list[dict], list[dict], list[dict], Any]:
    inp = ex.get("input") or {}
    prompt = list(inp.get("messages") or [])
    chosen = list(ex.get("preferred_output") or ex.get("preferred_completion") or [])
    rejected = list(ex.get("non_preferred_output") or ex.get("non_preferred_completion") or [])
    return prompt, chosen, rejected, inp.get("tools")


def prepare_dpo(fmt: ChatFormat, examples: list[dict], max_len: int, *, label: str = "training"
                ) -> tuple[list[PreferencePair], PreparedData]:
    pairs: list[PreferencePair] = []
    flat = PreparedData([])
    turns = turns_with_eot = 0
    for ex in examples:
        prompt, chosen, rejected, tools = dpo_messages(ex)
        c = fmt.encode(prompt + chosen, tools=tools, max_len=max_len, only_last=True)
        r = fmt.encode(prompt + rejected, tools=tools, max_len=max_len, only_last=True)
        flat.truncated += c.truncated or r.truncated
        if c.n_trained == 0 or r.n_trained == 0:
            flat.dropped += 1
            continue
        for e in (c, r):
            if not e.truncated:
                turns += e.turns
                turns_with_eot += e.turns_with_eot
        pairs.append(PreferencePair(c, r))
        flat.examples += [c, r]
    _refuse_silent_failures(fmt, flat, turns, turns_with_eot, len(examples), label)
    return pairs, flat


# -- batching ------------------------------------------------------------------------------------
def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, *, group: int = 16
                  ) -> list[list[int]]:
    """Random batches of similar-length examples, so padding wastes little compute.

    Shuffle (seeded per epoch, so a resumed job sees the same order), cut into mega-batches of
    ``group`` batches, sort each by length, slice into batches, then shuffle the batch order so
    long and short batches alternate. Every example appears exactly once per epoch.
    """
    rng = random.Random(seed * 1000003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    mega = batch_size * group
    for s in range(0, len(order), mega):
        chunk = sorted(order[s:s + mega], key=lambda i: lengths[i], reverse=True)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def micro_batches(batch: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Split a batch (sorted longest first) so no padded micro-batch exceeds ``max_tokens``."""
    items = sorted(batch, key=lambda i: lengths[i], reverse=True)
    out: list[list[int]] = []
    cur: list[int] = []
    for i in items:
        width = lengths[cur[0]] if cur else lengths[i]
        if cur and width * (len(cur) + 1) > max_tokens:
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def collate(encs: list[Encoded], pad_id: int):
    import torch

    width = max(len(e.input_ids) for e in encs)
    ids = torch.full((len(encs), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encs), width), dtype=torch.long)
    for row, e in enumerate(encs):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return ids, labels, mask
