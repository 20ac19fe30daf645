"""Token counts of whitespace-normalised texts from cached counts of their words.

A text whose whitespace is only single spaces between words (``" ".join(t.split()) == t``: what
the checker's ``needs_ws_normalising`` establishes) is tokenized by tiktoken as its first word
followed by each other word with its leading space: ``w0 + " w1" + " w2" ...``. Both OpenAI
encodings' split patterns (``OPENAI_ENCODINGS`` in :mod:`.tokens`) start every piece that holds
whitespace at a whitespace character or at a single optional space before letters or punctuation,
so no piece straddles a space that precedes a non-space character; nothing looks behind; and the
only lookaheads (``\\s+(?!\\S)``, ``\\s++$``) start at whitespace. Byte-pair merges never cross
pieces. So ``len(encode(t)) == len(encode(w0)) + sum(len(encode(" " + w)) for w in rest)``
(tested on random texts against tiktoken: tests/data/test_plain_chat.py).

Words recur far more than texts (a file's vocabulary is small next to its length), so counting a
text becomes a split and a few dictionary look-ups instead of a run of the tokenizer's regex.
Both caches are bounded (each cleared when full, between batches) and hold short words only.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable
from itertools import islice


class WordCounts:
    MAX_SPACED = 1 << 16  # a file's vocabulary, mostly
    MAX_FIRST = 1 << 12   # first words repeat less ("Q17:", names): fewer, so memory stays small
    MAX_WORD = 48  # longer "words" (URLs, base64, long numbers) are rarely seen twice: not kept

    def __init__(self) -> None:
        self.first: dict[str, int] = {}   # word -> tokens of the word at the start of a text
        self.spaced: dict[str, int] = {}  # word -> tokens of " " + word

    def split_counts(self, texts: list[str], known: dict[str, int]
                     ) -> tuple[list[str], Callable[[list[int], Callable[[str], int]], None]]:
        """Count each text from the word counts: into ``known`` at once where every word is cached.
        Returns the strings to encode (each new word ``w`` of a text's start, then ``" " + w`` for
        each other new word) and the function that, given their token counts (and a function that
        encodes a text, for the rare text whose words were dropped from a cache in between),
        counts the other texts into ``known`` and keeps the new words' counts."""
        first, spaced = self.first, self.spaced
        if len(first) > self.MAX_FIRST:
            first.clear()
        if len(spaced) > self.MAX_SPACED:
            spaced.clear()
        spaced_count = spaced.__getitem__
        new_first: dict[str, None] = {}
        new_spaced: dict[str, None] = {}
        # (text, tokens of its other words or -1: count it again once the new words are known, its
        # new first word or None); no word lists are kept, so memory stays flat
        waiting: list[tuple[str, int, str | None]] = []
        for s in texts:
            words = s.split(" ")
            w0 = words[0]
            try:
                rest = sum(map(spaced_count, islice(words, 1, None)))
            except KeyError:  # a word not seen yet
                rest = -1
                new_spaced.update(dict.fromkeys(w for w in islice(words, 1, None) if w not in spaced))
            n = first.get(w0)
            if n is None:
                new_first[w0] = None
            elif rest >= 0:
                known[s] = n + rest
                continue
            waiting.append((s, rest, None if n is not None else w0))
        new_words = list(new_first), list(new_spaced)

        def finish(counts: list[int], encode_len: Callable[[str], int]) -> None:
            k = len(new_words[0])
            got_first = dict(zip(new_words[0], counts[:k], strict=True))
            got_spaced = dict(zip(new_words[1], counts[k:], strict=True))
            first_of = ChainMap(got_first, first).__getitem__
            spaced_of = ChainMap(got_spaced, spaced).__getitem__
            for s, rest, w0 in waiting:
                if rest >= 0:
                    known[s] = rest + got_first[w0]  # only the first word was new
                else:
                    words = s.split(" ")
                    try:
                        known[s] = first_of(words[0]) + sum(map(spaced_of, islice(words, 1, None)))
                    except KeyError:  # a cache was cleared in between (batches counted out of turn)
                        known[s] = encode_len(s)
            limit = self.MAX_WORD
            first.update((w, n) for w, n in got_first.items() if len(w) <= limit)
            spaced.update((w, n) for w, n in got_spaced.items() if len(w) <= limit)
        return new_words[0] + [" " + w for w in new_words[1]], finish
