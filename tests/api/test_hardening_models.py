"""Issue #10: registered models are per project (F1), registration validates what it is given (F3-F6) and
reveals nothing about the server's file system (F11), and a model that cannot load answers 503, not 500."""

from __future__ import annotations

import io
import json
import os

import openai
import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app as cli_app


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


def _register(client, name, path):
    return client.post("/models", body={"id": name, "path": str(path)}, cast_to=openai.types.Model)


def _hf_folder(path, config=None):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config or {"model_type": "llama", "max_position_embeddings": 512}))
    return path


def test_registered_models_belong_to_the_registering_project(sdk, tmp_path):
    a, b = sdk(_make_key(sdk.settings, "alpha")), sdk(_make_key(sdk.settings, "beta"))
    _register(a, "modelA-private", _hf_folder(tmp_path / "m"))
    assert "modelA-private" in [m.id for m in a.models.list()]
    assert a.models.retrieve("modelA-private").id == "modelA-private"

    assert "modelA-private" not in [m.id for m in b.models.list()]
    with pytest.raises(openai.NotFoundError):
        b.models.retrieve("modelA-private")
    with pytest.raises(openai.NotFoundError):  # like every other resource: 404, not 403
        b.models.delete("modelA-private")
    train = b.files.create(file=("t.jsonl", io.BytesIO(b'{"messages": [{"role": "user", "content": "hi"}, '
                                                        b'{"role": "assistant", "content": "yo"}]}\n')),
                           purpose="fine-tune")
    with pytest.raises(openai.NotFoundError) as err:
        b.fine_tuning.jobs.create(model="modelA-private", training_file=train.id)
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        b.chat.completions.create(model="modelA-private", messages=[{"role": "user", "content": "hi"}],
                                  max_tokens=1)
    assert a.models.delete("modelA-private").deleted is True  # b's attempt did nothing


def test_operator_models_are_global(make_settings, live_server, tmp_path):
    settings = make_settings()
    key_a, key_b = _make_key(settings, "alpha"), _make_key(settings, "beta")
    folder = _hf_folder(tmp_path / "shared")
    runner = CliRunner(env={"COLUMNS": "200"})
    added = runner.invoke(cli_app, ["models", "add", "shared-llama", str(folder), "--global",
                                    "--data-dir", str(settings.data_dir)])
    assert added.exit_code == 0, added.output
    with live_server(settings) as server:
        for key in (key_a, key_b):
            client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
            assert client.models.retrieve("shared-llama").id == "shared-llama"
        with pytest.raises(openai.PermissionDeniedError):  # only the operator removes it
            client.models.delete("shared-llama")
    removed = runner.invoke(cli_app, ["models", "delete", "shared-llama", "--global",
                                      "--data-dir", str(settings.data_dir)])
    assert removed.exit_code == 0, removed.output


def test_registration_rejects_hostile_paths_with_400(sdk, tmp_path):
    client = sdk()
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    huge = _hf_folder(tmp_path / "huge", {"model_type": "llama", "max_position_embeddings": 1e20})
    also_huge = _hf_folder(tmp_path / "huge-int", {"model_type": "llama", "max_position_embeddings": 10**20})
    for name, path in [("nul", "/tmp/a\x00b"), ("long", "/" + "a" * 5000), ("junk", junk), ("huge", huge),
                       ("huge-int", also_huge)]:
        with pytest.raises(openai.BadRequestError) as err:
            _register(client, name, path)
        assert err.value.param == "path", name
    assert {"nul", "long", "junk", "huge", "huge-int"}.isdisjoint(m.id for m in client.models.list())


def test_registration_errors_reveal_nothing_about_the_file_system(sdk, tmp_path):
    client = sdk()
    secret = tmp_path / "secret-target"
    secret.mkdir()
    (secret / "notes.txt").write_text("x")
    link = tmp_path / "innocent"
    link.symlink_to(secret)
    messages = []
    for path in (link, "/proc/self", tmp_path / "missing", secret):
        with pytest.raises(openai.BadRequestError) as err:
            _register(client, "probe", path)
        messages.append(err.value.message)
    assert not any(str(secret) in m or "secret-target" in m for m in messages)
    assert not any(f"/proc/{n}" in m for m in messages for n in range(1, 10))
    assert not any(str(tmp_path) in m for m in messages)
    assert len(set(messages)) == 1  # missing and existing-but-not-a-model read the same


def test_a_model_that_fails_to_load_answers_503(sdk, tmp_path):
    """Registration cannot catch everything (weights corrupted after it): the request gets a 503 with a
    message, never a 500."""
    client = sdk()
    folder = _hf_folder(tmp_path / "broken", {"model_type": "llama", "max_position_embeddings": 512})
    _register(client, "broken", folder)
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    assert err.value.status_code == 503 and err.value.code == "model_unavailable"
    assert str(folder) not in err.value.message
