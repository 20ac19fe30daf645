"""Serving subsystems owned by the app: created on first use, closed at shutdown.

The engine thread starts with the first generation request, never at import or server start.
Functions take the app state (``AppState``) so services stay free of FastAPI.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from tuneforge.inference.embeddings import Embedder, get_embedder
from tuneforge.inference.upstream import UpstreamRouter, get_router

if TYPE_CHECKING:  # the engine pulls in torch: imported on first use, not with the app
    from tuneforge.inference.engine import Engine

_lock = threading.Lock()


def get_engine(state) -> Engine:
    from tuneforge.inference.engine import Engine

    with _lock:
        engine = state.extras.get("engine")
        if engine is None:
            s = state.settings
            engine = Engine(state.registry, max_batch_size=s.serve_max_batch_size, max_adapters=s.serve_max_adapters,
                            max_base_models=s.serve_max_base_models, device=s.serve_device,
                            threads=s.serve_threads)
            state.extras["engine"] = engine

            async def _close() -> None:
                await asyncio.get_running_loop().run_in_executor(None, engine.shutdown)

            state.add_closer(_close)
        return engine


def get_embeddings(state) -> Embedder:
    return get_embedder()


def get_upstreams(state) -> UpstreamRouter:
    return get_router(state.settings)


def get_http(state):
    """One pooled ``httpx.AsyncClient`` for upstream forwarding (created inside the event loop)."""
    import httpx

    with _lock:
        client = state.extras.get("upstream_http")
        if client is None:
            client = httpx.AsyncClient(timeout=None, follow_redirects=False)
            state.extras["upstream_http"] = client
            state.add_closer(client.aclose)
        return client
