"""The typed runtime: everything a running tuneforge owns, built once by the app's lifespan (or a CLI command).

Services receive the runtime (or the one part they need) as an argument; nothing is looked up by string
key. Heavy parts are created on first use, never at start-up or import: the engine pulls in torch, the
ingestor loads the embeddings model, the run executor starts threads. Each part that holds threads or
connections is closed by ``aclose`` in the reverse order of creation.

Layering: this module sits above the capability packages (it builds their objects); they import it
only for type annotations, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tuneforge.db.session import Database
from tuneforge.gateway import Gateway
from tuneforge.models.registry import ModelRegistry
from tuneforge.models.tokenizers import TokenizerCache
from tuneforge.settings import Settings
from tuneforge.storage import BlobStore, LocalBlobStore

if TYPE_CHECKING:  # these pull in torch or start threads: created on first use
    from tuneforge.assistants.executor import RunExecutor
    from tuneforge.evals.runner import OfflineRunner
    from tuneforge.inference.embeddings import Embedder
    from tuneforge.inference.engine import Engine
    from tuneforge.responses.executor import BackgroundResponses
    from tuneforge.retrieval.ingest import Ingestor
    from tuneforge.training.worker import Worker


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: BlobStore
    registry: ModelRegistry
    gateway: Gateway
    tokenizers: TokenizerCache = field(default_factory=TokenizerCache)
    started_at: float = field(default_factory=time.time)
    training_worker: Worker | None = None  # the in-process worker thread, when the settings ask for one
    _engine: Engine | None = field(default=None, repr=False)
    _ingestor: Ingestor | None = field(default=None, repr=False)
    _runs: RunExecutor | None = field(default=None, repr=False)
    _background_responses: BackgroundResponses | None = field(default=None, repr=False)
    _offline: OfflineRunner | None = field(default=None, repr=False)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Data dirs created, database migrated; nothing heavy loaded."""
        settings.ensure_dirs()
        db = Database(settings.resolved_database_url)
        db.migrate()
        registry = ModelRegistry(settings, db)
        runtime = cls(settings=settings, db=db, store=LocalBlobStore(settings.blobs_dir),
                      registry=registry, gateway=Gateway.from_settings(settings, registry))
        runtime.add_closer(runtime.gateway.aclose)
        return runtime

    # ------------------------------------------------------------------ parts created on first use

    @property
    def engine(self) -> Engine:
        """The generation engine (one per process, shared by chat, completions, assistants and responses)."""
        with self._lock:
            if self._engine is None:
                from tuneforge.inference.engine import Engine

                s = self.settings
                engine = Engine(self.registry, max_batch_size=s.serve_max_batch_size, max_adapters=s.serve_max_adapters,
                                max_base_models=s.serve_max_base_models, device=s.serve_device,
                                threads=s.serve_threads, prefill_tokens=s.serve_prefill_tokens,
                                prefix_cache_mb=s.serve_prefix_cache_mb, onednn=s.serve_onednn,
                                onednn_packed=s.serve_onednn_packed, fused_lora=s.serve_fused_lora)
                self._engine = engine
                self._closers.append(lambda: asyncio.get_running_loop().run_in_executor(None, engine.shutdown))
            return self._engine

    @property
    def engine_started(self) -> bool:
        return self._engine is not None

    @property
    def embedder(self) -> Embedder:
        from tuneforge.inference.embeddings import get_embedder

        return get_embedder()

    @property
    def ingestor(self) -> Ingestor:
        """Vector-store ingestion (background threads)."""
        with self._lock:
            if self._ingestor is None:
                from tuneforge.retrieval.ingest import Budget, Ingestor

                budget = Budget(self.settings.ingest_max_file_bytes, self.settings.ingest_file_timeout_s)
                ingestor = self._ingestor = Ingestor(self.db, self.store, workers=self.settings.ingest_workers,
                                                     budget=budget, lease_s=self.settings.lease_s)
                self._closers.append(lambda: asyncio.get_running_loop().run_in_executor(None, ingestor.close))
            return self._ingestor

    @property
    def runs(self) -> RunExecutor:
        """The assistants run executor (a small thread pool)."""
        with self._lock:
            if self._runs is None:
                from tuneforge.assistants.executor import RunExecutor

                executor = self._runs = RunExecutor(self)

                async def _close() -> None:
                    executor.close()

                self._closers.append(_close)
            return self._runs

    @property
    def background_responses(self) -> BackgroundResponses:
        """The executor of ``background: true`` responses (a small thread pool)."""
        with self._lock:
            if self._background_responses is None:
                from tuneforge.responses.executor import BackgroundResponses

                executor = self._background_responses = BackgroundResponses(self)

                async def _close() -> None:
                    await asyncio.get_running_loop().run_in_executor(None, executor.close)

                self._closers.append(_close)
            return self._background_responses

    @property
    def offline(self) -> OfflineRunner:
        """The offline runner of eval runs and batches (one thread, started when there is work)."""
        with self._lock:
            if self._offline is None:
                from tuneforge.evals.runner import OfflineRunner

                runner = self._offline = OfflineRunner(self)

                async def _close() -> None:
                    await asyncio.get_running_loop().run_in_executor(None, runner.close)

                self._closers.append(_close)
            return self._offline

    def wake_training_worker(self) -> None:
        if self.training_worker is not None:
            self.training_worker.wake()

    # ------------------------------------------------------------------ lifecycle

    def add_closer(self, closer: Callable[[], Awaitable[None]]) -> None:
        """``closer`` is an ``async`` callable run at shutdown, last added first."""
        with self._lock:
            self._closers.append(closer)

    async def aclose(self) -> None:
        with self._lock:
            closers, self._closers = self._closers, []
            handing_over = [x for x in (self._background_responses, self._runs) if x is not None]
        for executor in handing_over:  # before the engine stops: its failing requests must not fail their work
            await asyncio.get_running_loop().run_in_executor(None, executor.hand_over)
        for closer in reversed(closers):
            await closer()
        self.db.dispose()
