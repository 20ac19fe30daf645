"""The `tuneforge` CLI against a real server (files, models) and the local data dir (keys)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tuneforge.cli.main import app

runner = CliRunner(env={"COLUMNS": "200"})


def invoke(*args: str, **kwargs):
    result = runner.invoke(app, list(args), **kwargs)
    return result


def test_help_everywhere():
    for args in (["--help"], ["files", "--help"], ["models", "--help"], ["keys", "--help"], ["serve", "--help"],
                 ["files", "upload", "--help"]):
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_a_group_without_a_command_is_a_usage_error():
    result = invoke("files")
    assert result.exit_code == 2 and "Usage" in result.output


def test_keys_lifecycle(tmp_path):
    data = str(tmp_path / "d")
    created = invoke("keys", "create", "--project", "team-a", "--name", "laptop", "--data-dir", data, "--json")
    assert created.exit_code == 0, created.output
    info = json.loads(created.output)
    assert info["key"].startswith("tf-") and info["project"] == "team-a"

    listed = json.loads(invoke("keys", "list", "--data-dir", data, "--json").output)
    assert len(listed) == 1 and listed[0]["prefix"] == info["key"][:10] and "key" not in listed[0]
    table = invoke("keys", "list", "--data-dir", data)
    assert "team-a" in table.output and info["key"] not in table.output

    assert invoke("keys", "revoke", info["id"], "--data-dir", data).exit_code == 0
    assert json.loads(invoke("keys", "list", "--data-dir", data, "--json").output)[0]["revoked_at"]
    assert invoke("keys", "revoke", info["id"], "--data-dir", data).exit_code == 1
    assert invoke("keys", "create", "--project", "bad name!", "--data-dir", data).exit_code == 1


def test_files_and_models_commands(settings, live_server, tmp_path):
    src = tmp_path / "train.jsonl"
    src.write_bytes('{"messages": [{"role": "user", "content": "你好"}]}\n'.encode())
    with live_server(settings) as server:
        base = ["--base-url", server.base_url]
        up = invoke("files", "upload", str(src), *base, "--json")
        assert up.exit_code == 0, up.output
        file_id = json.loads(up.output)["id"]

        listed = invoke("files", "list", *base, "--json")
        assert [f["id"] for f in json.loads(listed.output)] == [file_id]
        assert file_id in invoke("files", "list", *base).output
        assert json.loads(invoke("files", "get", file_id, *base, "--json").output)["bytes"] == src.stat().st_size

        out = tmp_path / "copy.jsonl"
        assert invoke("files", "content", file_id, "-o", str(out), *base).exit_code == 0
        assert out.read_bytes() == src.read_bytes()

        missing = invoke("files", "get", "file-nope", *base)
        assert missing.exit_code == 1 and "404" in missing.output

        assert invoke("files", "delete", file_id, *base).exit_code == 0
        assert json.loads(invoke("files", "list", *base, "--json").output) == []

        models = json.loads(invoke("models", "list", *base, "--json").output)
        assert "smollm2-135m-instruct" in [m["id"] for m in models]
        folder = tmp_path / "m"
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "llama"}')
        assert invoke("models", "add", "mine", str(folder), *base).exit_code == 0
        assert "mine" in invoke("models", "list", *base).output
        assert invoke("models", "delete", "mine", *base).exit_code == 0


def test_unreachable_server_is_a_clear_error():
    result = invoke("files", "list", "--base-url", "http://127.0.0.1:9/v1")
    assert result.exit_code == 2 and "Cannot reach" in result.output


def test_serve_refuses_public_bind_without_keys(tmp_path):
    result = invoke("serve", "--host", "0.0.0.0", "--port", "1", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "Refusing" in result.output and "keys create" in result.output
