"""The same server on PostgreSQL: a throwaway cluster started with the machine's initdb/pg_ctl (the
``postgres_url`` fixture in tests/conftest.py).

Skipped only where no PostgreSQL server binaries exist (CI installs them: see ``.ci/run``).
"""

from __future__ import annotations

import io

import openai
import pytest


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
