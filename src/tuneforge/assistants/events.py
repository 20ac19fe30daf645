"""Run events for streaming: the executor publishes from its worker thread, each streaming
response reads its own asyncio queue on the event loop. Events of a run nobody streams are dropped."""

from __future__ import annotations

import asyncio
import threading

DONE = object()  # the run reached a terminal state; no more events


class EventBus:
    def __init__(self):
        self._subs: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, run_id: str) -> asyncio.Queue:
        """Call on the event loop that will read the queue, before the run is submitted."""
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            self._subs.setdefault(run_id, []).append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue) -> None:
        with self._lock:
            subs = [s for s in self._subs.get(run_id, []) if s[1] is not queue]
            if subs:
                self._subs[run_id] = subs
            else:
                self._subs.pop(run_id, None)

    def publish(self, run_id: str, event: str | object, data: dict | None = None) -> None:
        with self._lock:
            subs = list(self._subs.get(run_id, []))
        item = DONE if event is DONE else (event, data)
        for loop, queue in subs:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # that loop is closed: the client is gone
                self.unsubscribe(run_id, queue)
