"""The app factory. Heavy things (models, workers) are created in the lifespan, never at import."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from tuneforge import __version__
from tuneforge.api.compat.chat import router as compat_chat_router
from tuneforge.api.compat.fine_tuning import router as compat_fine_tuning_router
from tuneforge.api.compat.kb import router as compat_kb_router
from tuneforge.api.compat.router import router as compat_router
from tuneforge.api.console import install_console
from tuneforge.api.errors import install_error_handlers
from tuneforge.api.middleware import RequestContextMiddleware
from tuneforge.api.openapi import install_openapi
from tuneforge.api.v1.assistants.router import router as assistants_router
from tuneforge.api.v1.batches.router import router as batches_router
from tuneforge.api.v1.chat.router import router as chat_router
from tuneforge.api.v1.completions.router import router as completions_router
from tuneforge.api.v1.conversations.router import router as conversations_router
from tuneforge.api.v1.embeddings.router import router as embeddings_router
from tuneforge.api.v1.evals.router import router as evals_router
from tuneforge.api.v1.files.router import router as files_router
from tuneforge.api.v1.fine_tuning.router import router as fine_tuning_router
from tuneforge.api.v1.graders.router import router as graders_router
from tuneforge.api.v1.keys.router import router as keys_router
from tuneforge.api.v1.masks.router import router as masks_router
from tuneforge.api.v1.me.router import router as me_router
from tuneforge.api.v1.models.router import router as models_router
from tuneforge.api.v1.responses.router import router as responses_router
from tuneforge.api.v1.threads.router import router as threads_router
from tuneforge.api.v1.vector_stores.router import router as vector_stores_router
from tuneforge.files import service as files_service
from tuneforge.projects import DEFAULT_PROJECT, get_or_create_project
from tuneforge.runtime import Runtime
from tuneforge.settings import Settings, get_settings

log = logging.getLogger("tuneforge.api")


def _open_runtime(settings: Settings) -> Runtime:
    rt = Runtime.open(settings)
    try:
        with rt.db.session() as session:
            get_or_create_project(session, DEFAULT_PROJECT)
    except IntegrityError:  # another server sharing the database created it at the same moment
        pass
    try:
        with rt.db.session() as session:
            files_service.purge_expired(session, rt.store)
    except SQLAlchemyError:  # a replica starting at the same moment purged the same files first
        log.warning("purging expired files failed; the next start-up retries", exc_info=True)
    return rt


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.perf_counter()
        rt = await run_in_threadpool(_open_runtime, settings)
        app.state.tuneforge = rt
        from tuneforge.training.worker import start_in_process  # a polling thread; training runs in children

        start_in_process(rt)
        pending = rt.ingestor.resume()  # files whose ingestion a previous run did not finish
        if pending:
            log.info("resuming ingestion of %d vector-store file(s)", pending)
        rt.runs.recover()  # runs a previous run of the server left queued or in progress
        rt.background_responses.recover()  # likewise for background responses
        waiting = await run_in_threadpool(rt.offline.resume)  # eval runs and batches left unfinished
        if waiting:
            log.info("resuming %d eval run(s) / batch(es)", waiting)
        log.info(
            "tuneforge %s ready in %.2f s (data dir %s)",
            __version__,
            time.perf_counter() - started,
            settings.data_dir,
        )
        try:
            yield
        finally:
            await rt.aclose()

    app = FastAPI(
        title="tuneforge",
        version=__version__,
        lifespan=lifespan,
        description="Self-hosted, OpenAI-compatible fine-tuning and serving.",
    )
    install_error_handlers(app)
    install_openapi(app)

    app.add_middleware(RequestContextMiddleware)

    @app.get("/health", tags=["ops"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    app.include_router(files_router, prefix="/v1")
    app.include_router(me_router, prefix="/v1")
    app.include_router(keys_router, prefix="/v1")
    app.include_router(models_router, prefix="/v1")
    app.include_router(chat_router, prefix="/v1")
    app.include_router(completions_router, prefix="/v1")
    app.include_router(embeddings_router, prefix="/v1")
    app.include_router(fine_tuning_router, prefix="/v1")
    app.include_router(graders_router, prefix="/v1")
    app.include_router(evals_router, prefix="/v1")
    app.include_router(batches_router, prefix="/v1")
    app.include_router(vector_stores_router, prefix="/v1")
    app.include_router(assistants_router, prefix="/v1")
    app.include_router(threads_router, prefix="/v1")
    app.include_router(masks_router, prefix="/v1")
    app.include_router(responses_router, prefix="/v1")
    app.include_router(conversations_router, prefix="/v1")
    app.include_router(compat_router)
    app.include_router(compat_chat_router)
    app.include_router(compat_fine_tuning_router)
    app.include_router(compat_kb_router)
    install_console(app)  # the web console at /console/ (static files calling /v1)
    return app
