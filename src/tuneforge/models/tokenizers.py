"""A process-wide cache of loaded tokenizers."""

from __future__ import annotations

import threading
from typing import Any


class TokenizerCache:
    """Tokenizers are slow to load (seconds); keep the ones the server has used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Any] = {}

    def get(self, key: str, load) -> Any:
        with self._lock:
            if key not in self._items:
                self._items[key] = load()
            return self._items[key]
