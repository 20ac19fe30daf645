"""The web console: static files under ``/console/`` (shipped in the package) and ``/`` → ``/console/``.

The console is plain ES modules and CSS (no build step, no CDN) that call the public ``/v1`` API from
the same origin, exactly as the SDK does.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


class _ConsoleFiles(StaticFiles):
    """Static files that the browser revalidates, so an upgraded server never runs a stale script."""

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers.setdefault("cache-control", "no-cache")
        return response


def install_console(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @app.get("/console", include_in_schema=False)
    def console_slash() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    app.mount("/console", _ConsoleFiles(directory=STATIC_DIR, html=True), name="console")
