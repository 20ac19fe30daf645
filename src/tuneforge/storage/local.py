"""Blob store on the local filesystem: temp file + fsync + atomic rename."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from tuneforge.errors import NotFound


class LocalBlobWriter:
    def __init__(self, store: LocalBlobStore):
        self._store = store
        self.key = secrets.token_hex(16)
        self.size = 0
        self._hash = hashlib.sha256()
        tmp_dir = store.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = tmp_dir / f"{self.key}.part"
        self._fh = open(self._tmp, "xb")  # noqa: SIM115 - closed in commit/abort
        self._done = False

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self.size += len(data)

    def commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        final = self._store.path(self.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        self._fh.close()
        self._tmp.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> LocalBlobWriter:
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.abort()


class LocalBlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cleanup_partials()

    def cleanup_partials(self, older_than_s: float = 900) -> int:
        """Remove half-written uploads left by a crash; returns how many were removed.

        Only parts untouched for ``older_than_s`` go: another process (a worker) sharing the
        store may be writing one right now, and a live upload keeps bumping its mtime.
        """
        tmp_dir = self.root / "tmp"
        removed = 0
        if tmp_dir.is_dir():
            cutoff = time.time() - older_than_s
            for part in tmp_dir.glob("*.part"):
                try:
                    if part.stat().st_mtime < cutoff:
                        part.unlink(missing_ok=True)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    def writer(self) -> LocalBlobWriter:
        return LocalBlobWriter(self)

    def path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise NotFound("No such blob.")
        return self.root / key[:2] / key

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def open_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with open(self.path(key), "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def partial_count(self) -> int:
        tmp_dir = self.root / "tmp"
        return len(list(tmp_dir.glob("*.part"))) if tmp_dir.is_dir() else 0
