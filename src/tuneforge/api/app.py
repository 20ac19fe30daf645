"""The app factory. Heavy things (models, workers) are created in the lifespan, never at import."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from tuneforge import __version__
from tuneforge.api.compat.router import router as compat_router
from tuneforge.api.deps import AppState
from tuneforge.api.errors import error_response, install_error_handlers
from tuneforge.api.v1.files import service as files_service
from tuneforge.api.v1.files.router import router as files_router
from tuneforge.api.v1.models.router import router as models_router
from tuneforge.db.session import Database
from tuneforge.logging_setup import request_id_var
from tuneforge.projects import DEFAULT_PROJECT, get_or_create_project
from tuneforge.registry import ModelRegistry
from tuneforge.settings import Settings, get_settings
from tuneforge.storage import LocalBlobStore

log = logging.getLogger("tuneforge.api")


def _open_state(settings: Settings) -> AppState:
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    store = LocalBlobStore(settings.blobs_dir)
    with db.session() as session:
        get_or_create_project(session, DEFAULT_PROJECT)
        files_service.purge_expired(session, store)
    return AppState(settings=settings, db=db, store=store, registry=ModelRegistry(settings, db),
                    started_at=time.time())


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.perf_counter()
        state = await run_in_threadpool(_open_state, settings)
        app.state.tuneforge = state
        log.info("tuneforge %s ready in %.2f s (data dir %s)", __version__, time.perf_counter() - started,
                 settings.data_dir)
        try:
            yield
        finally:
            for closer in reversed(state.extras.get("closers", [])):
                await closer()
            state.db.dispose()

    app = FastAPI(title="tuneforge", version=__version__, lifespan=lifespan,
                  description="Self-hosted, OpenAI-compatible fine-tuning and serving.")
    install_error_handlers(app)

    @app.middleware("http")
    async def request_context(request: Request, call_next):
        request_id = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            # Handled here, not only by the app's Exception handler (which runs in the outermost
            # middleware), so even a 500 carries its request id back to the client.
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = error_response(500, "The server had an error while processing your request. "
                                           "Quote the x-request-id header when you report it.", code="server_error")
        finally:
            request_id_var.reset(token)
        response.headers["x-request-id"] = request_id
        log.info("%s %s -> %s", request.method, request.url.path, response.status_code,
                 extra={"fields": {"ms": round((time.perf_counter() - started) * 1000, 1),
                                   "request_id": request_id}})
        return response

    @app.get("/health", tags=["ops"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    app.include_router(files_router, prefix="/v1")
    app.include_router(models_router, prefix="/v1")
    app.include_router(compat_router)
    return app
