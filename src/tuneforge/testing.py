"""Helpers for testing against a real tuneforge server (used by our tests; handy for yours)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


def wait_until(predicate, timeout: float, what: str = "condition", interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not met within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real uvicorn serving ``build_app(settings)`` on 127.0.0.1 in a background thread."""

    def __init__(self, settings):
        import uvicorn

        from tuneforge.api.app import build_app

        self.settings = settings
        self.port = free_port()
        self.app = build_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def live_server(settings) -> Iterator[LiveServer]:
    server = LiveServer(settings).start()
    try:
        yield server
    finally:
        server.stop()


def migrated_registry(settings, models: dict[str, str] | None = None):
    """The model registry over ``settings``' data folder and database (created and migrated), with
    ``models`` (model id -> local folder) registered. The caller disposes ``registry.db``."""
    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry

    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    registry = ModelRegistry(settings, db)
    for model_id, folder in (models or {}).items():
        registry.register(model_id, folder, None)
    return registry


def start_keyed_server(settings, models: dict[str, str], server_class: type[LiveServer] = LiveServer
                       ) -> tuple[LiveServer, str]:
    """A tuneforge on loopback that serves ``models`` (model id -> local folder) to project ``default``'s API
    key: the "upstream" of the gateway tests. Returns (started server, its key)."""
    from tuneforge.projects import create_key

    db = migrated_registry(settings, models).db
    with db.session() as session:
        key, _ = create_key(session, "default")
    db.dispose()
    return server_class(settings).start(), key


# -- a throwaway PostgreSQL --------------------------------------------------------------------------------
class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (or root without a ``postgres`` user to run them as)."""


def postgres_bindir() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))  # Debian keeps them off PATH
    return os.path.dirname(candidates[-1]) if candidates else None


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A PostgreSQL cluster started with the machine's initdb/pg_ctl on a free loopback port, removed
    afterwards; yields the server URL (``postgresql+psycopg://tf@127.0.0.1:PORT``) without a database."""
    bindir = postgres_bindir()
    if bindir is None:
        raise PostgresUnavailable("no PostgreSQL server binaries (initdb) on this machine")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run initdb as") from None
        run_as = ["runuser", "-u", "postgres", "--"]
    root = tempfile.mkdtemp(prefix="tf-pg-")
    os.chmod(root, 0o777)
    data = os.path.join(root, "data")
    port = free_port()
    subprocess.run([*run_as, f"{bindir}/initdb", "-D", data, "-U", "tf", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(root, "log"), "-o",
                    f"-p {port} -h 127.0.0.1 -k {root} -F", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://tf@127.0.0.1:{port}"
    finally:
        subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """``CREATE DATABASE name`` on a cluster from :func:`postgres_cluster`; returns its URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return f"{server_url}/{name}"
