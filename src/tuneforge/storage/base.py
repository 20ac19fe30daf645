"""Where file bytes live. Keys are made by the store, never taken from a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class BlobWriter(Protocol):
    key: str
    size: int
    sha256: str

    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class BlobStore(Protocol):
    def writer(self) -> BlobWriter:
        """A new blob; nothing is visible under its key until ``commit()``."""
        ...

    def open_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]: ...
    def path(self, key: str) -> Path:
        """A local path to read the blob from (local store: the file itself)."""
        ...

    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
