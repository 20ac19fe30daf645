"""`tuneforge serve`: run the API server."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated

import typer

from tuneforge.cli.common import err_console


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except OSError:
            return False


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [env: TUNEFORGE_HOST; default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env: TUNEFORGE_PORT; default 8000]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder [env: TUNEFORGE_DATA_DIR]")] = None,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="Allow a non-loopback bind while no API keys exist (anyone can use it)")] = False,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING [env: TUNEFORGE_LOG_LEVEL]")] = None,
) -> None:
    """Start the OpenAI-compatible API server (SQLite + local files by default)."""
    import uvicorn

    from tuneforge.api.app import build_app
    from tuneforge.db.session import Database
    from tuneforge.logging_setup import configure_logging
    from tuneforge.projects import any_keys
    from tuneforge.settings import Settings

    overrides = {k: v for k, v in {"host": host, "port": port, "data_dir": data_dir,
                                    "log_level": log_level}.items() if v is not None}
    if insecure_no_auth:
        overrides["insecure_no_auth"] = True
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    settings.ensure_dirs()

    if not is_loopback(settings.host) and not settings.insecure_no_auth:
        db = Database(settings.resolved_database_url)
        db.migrate()
        with db.session() as session:
            has_keys = any_keys(session)
        db.dispose()
        if not has_keys:
            err_console.print(
                f"[red]Refusing to listen on {settings.host}:[/red] no API keys exist, so anyone who can reach "
                "this address could use the server. Create one with `tuneforge keys create --project NAME`, "
                "or pass --insecure-no-auth if that is really what you want.")
            raise typer.Exit(2)

    app = build_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                access_log=False)
