"""API keys, projects and tenant isolation."""

from __future__ import annotations

import io

import httpx
import openai
import pytest


def _make_key(settings, project: str) -> str:
    from tuneforge.db.session import Database
    from tuneforge.projects import create_key

    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as session:
        key, _ = create_key(session, project)
    db.dispose()
    return key


def test_open_mode_accepts_any_key_and_ignores_openai_headers(sdk):
    client = sdk("anything-goes").with_options(default_headers={
        "OpenAI-Organization": "org-x", "OpenAI-Project": "proj-y", "OpenAI-Beta": "assistants=v2"})
    assert client.files.create(file=("a.txt", io.BytesIO(b"x")), purpose="user_data").bytes == 1


def test_keys_isolate_projects(sdk):
    key_a = _make_key(sdk.settings, "alpha")
    key_b = _make_key(sdk.settings, "beta")
    a, b = sdk(key_a), sdk(key_b)

    file_a = a.files.create(file=("secret.jsonl", io.BytesIO(b"alpha data")), purpose="fine-tune")
    assert [f.id for f in b.files.list()] == []
    for call in (b.files.retrieve, b.files.content, b.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(file_a.id)
    assert a.files.content(file_a.id).content == b"alpha data"  # b's delete did nothing

    with pytest.raises(openai.AuthenticationError) as err:
        sdk("tf-wrong-key-1234567890").files.list()
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert "tf-wro" in err.value.message and "1234567890" not in err.value.message


def test_missing_key_is_401_once_keys_exist(make_settings, live_server):
    settings = make_settings()
    _make_key(settings, "alpha")
    with live_server(settings) as server:
        response = httpx.get(server.base_url + "/files")
        assert response.status_code == 401
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        # health and the old status route stay open for load balancers and probes
        assert httpx.get(server.root_url + "/health").json()["status"] == "ok"
        assert httpx.get(server.root_url + "/status").json() == {"info": "ok", "response": {}}


def test_revoked_key_stops_working(sdk):
    from tuneforge.db.session import Database
    from tuneforge.projects import create_key, revoke_key

    settings = sdk.settings
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as session:
        keep, _ = create_key(session, "alpha")
        drop, row = create_key(session, "alpha")
    sdk(drop).files.list()
    with db.session() as session:
        revoke_key(session, row.id)
    db.dispose()
    with pytest.raises(openai.AuthenticationError):
        sdk(drop).files.list()
    sdk(keep).files.list()


def test_keys_are_stored_hashed(settings):
    from sqlalchemy import select

    from tuneforge.db.models import ApiKey
    from tuneforge.db.session import Database
    from tuneforge.projects import create_key

    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as session:
        key, _ = create_key(session, "p1")
    with db.session() as session:
        row = session.scalars(select(ApiKey)).one()
        assert key not in (row.key_hash, row.prefix) and len(row.prefix) < len(key)
    raw = settings.data_dir.joinpath("tuneforge.db").read_bytes()
    assert key.encode() not in raw
    db.dispose()
