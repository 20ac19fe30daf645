"""The same server on PostgreSQL: a throwaway cluster started with the machine's initdb/pg_ctl.

Skipped only where no PostgreSQL server binaries exist (the project's CI machines have them).
"""

from __future__ import annotations

import glob
import io
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import openai
import pytest


def _pg_bin() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(candidates[-1]) if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        run_as = ["runuser", "-u", "postgres", "--"]
    root = tempfile.mkdtemp(prefix="tf-pg-")
    os.chmod(root, 0o777)
    data = os.path.join(root, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*run_as, f"{bindir}/initdb", "-D", data, "-U", "tf", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(root, "log"), "-o",
                    f"-p {port} -h 127.0.0.1 -k {root} -F", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*run_as, f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "tf", "tuneforge"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://tf@127.0.0.1:{port}/tuneforge"
    finally:
        subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_migrations_match_models_on_postgres(postgres_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from tuneforge.db.migrate import upgrade_to_head
    from tuneforge.db.models import Base

    engine = create_engine(postgres_url)
    upgrade_to_head(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_files_api_and_restart_on_postgres(make_settings, live_server, postgres_url):
    settings = make_settings(database_url=postgres_url)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        ids = [client.files.create(file=(f"{i}.jsonl", io.BytesIO(b"{}\n" * (i + 1))), purpose="fine-tune").id
               for i in range(5)]
        assert [f.id for f in client.files.list(limit=2)] == ids[::-1]
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        assert client.files.content(ids[2]).content == b"{}\n" * 3
        assert client.files.delete(ids[0]).deleted
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(ids[0])
