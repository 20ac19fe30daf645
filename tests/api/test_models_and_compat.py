"""/v1/models, the extension to register local models, and the original simple API."""

from __future__ import annotations

import json

import httpx
import openai
import pytest


def _tiny_hf_folder(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 512}))
    return path


def test_models_list_and_retrieve(sdk):
    client = sdk()
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert "smollm2-135m-instruct" in ids
    model = client.models.retrieve("smollm2-135m-instruct")
    assert model.object == "model" and model.owned_by == "HuggingFaceTB" and isinstance(model.created, int)
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("gpt-17-ultra")
    assert err.value.code == "model_not_found"


def test_register_and_delete_local_model(sdk, tmp_path):
    client = sdk()
    folder = _tiny_hf_folder(tmp_path / "my-model")
    registered = client.post("/models", body={"id": "my-llama", "path": str(folder)}, cast_to=openai.types.Model)
    assert registered.id == "my-llama"
    assert client.models.retrieve("my-llama").model_extra["tuneforge"]["context_length"] == 512
    assert "my-llama" in [m.id for m in client.models.list()]

    with pytest.raises(openai.BadRequestError):  # duplicate name
        client.post("/models", body={"id": "my-llama", "path": str(folder)}, cast_to=openai.types.Model)
    with pytest.raises(openai.BadRequestError) as err:  # not a model
        client.post("/models", body={"id": "nope", "path": str(tmp_path)}, cast_to=openai.types.Model)
    assert err.value.param == "path"
    with pytest.raises(openai.PermissionDeniedError):
        client.models.delete("smollm2-135m-instruct")

    assert client.models.delete("my-llama").deleted is True
    assert folder.joinpath("config.json").exists()  # the user's files stay
    with pytest.raises(openai.NotFoundError):
        client.models.delete("my-llama")


def test_compat_status_and_upload_files(settings, live_server):
    with live_server(settings) as server:
        assert httpx.get(server.root_url + "/common/status").json() == {"info": "ok", "response": {}}
        response = httpx.post(server.root_url + "/upload_files", files=[
            ("files", ("a.jsonl", b'{"messages": []}\n', "application/jsonl")),
            ("files", ("b.csv", "问题,答案\n".encode(), "text/csv")),
        ])
        assert response.status_code == 200
        body = response.json()
        assert body["info"] == "ok" and len(body["response"]) == 2
        first = body["response"][0]
        assert first["filename"] == "a.jsonl" and first["status"] == "uploaded" and first["size"] == 17
        assert first["content_type"] == "application/jsonl"
        assert first["response"]["purpose"] == "fine-tune" and first["response"]["id"].startswith("file-")
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
        assert client.files.content(body["response"][1]["response"]["id"]).content == "问题,答案\n".encode()

        empty = httpx.post(server.root_url + "/upload_files", files=[("other", ("x", b"1"))])
        assert empty.status_code == 400 and empty.json()["error"]["param"] == "files"


def test_openapi_schema_and_health(sdk):
    client = sdk()
    schema = client.get("/../openapi.json", cast_to=httpx.Response).json()
    assert "/v1/files" in schema["paths"] and "/v1/models" in schema["paths"]
    assert client.get("/../health", cast_to=httpx.Response).json()["status"] == "ok"


def test_unknown_route_and_method_use_the_envelope(sdk):
    client = sdk()
    with pytest.raises(openai.NotFoundError) as err:
        client.get("/no/such/thing", cast_to=httpx.Response)
    assert "Invalid URL" in err.value.message
    with pytest.raises(openai.APIStatusError) as err:
        client.put("/files", cast_to=httpx.Response)
    assert err.value.status_code == 405 and set(err.value.body) == {"message", "type", "param", "code"}
    with pytest.raises(openai.BadRequestError):
        client.post("/models", body={"id": "x", "path": "/tmp", "extra": 1}, cast_to=httpx.Response)


def test_fine_tuned_models_are_listed_per_project_and_deletable(sdk, tmp_path):
    from tuneforge.db.session import Database
    from tuneforge.models import catalog
    from tuneforge.projects import create_key, get_or_create_project

    settings = sdk.settings
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as session:
        key_a, _ = create_key(session, "alpha")
        key_b, _ = create_key(session, "beta")
        alpha = get_or_create_project(session, "alpha")
        adapter = settings.data_dir / "adapters" / "ftjob-x" / "final"
        adapter.mkdir(parents=True)
        (adapter / "adapter_config.json").write_text("{}")
        catalog.register_fine_tuned(session, model_id="ft:smollm2-135m-instruct:alpha:demo:ftjob-x",
                                    project_id=alpha.id, base_model="smollm2-135m-instruct", adapter_dir=adapter,
                                    settings=settings, job_id="ftjob-x")
    db.dispose()
    model_id = "ft:smollm2-135m-instruct:alpha:demo:ftjob-x"
    a, b = sdk(key_a), sdk(key_b)
    assert model_id in [m.id for m in a.models.list()]
    assert model_id not in [m.id for m in b.models.list()]
    got = a.models.retrieve(model_id)
    assert got.owned_by == "alpha" and got.model_extra["tuneforge"]["base_model"] == "smollm2-135m-instruct"
    with pytest.raises(openai.NotFoundError):
        b.models.retrieve(model_id)
    with pytest.raises(openai.NotFoundError):
        b.models.delete(model_id)
    assert a.models.delete(model_id).deleted
    assert not adapter.exists()
    with pytest.raises(openai.NotFoundError):
        a.models.retrieve(model_id)
