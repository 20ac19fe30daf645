"""/v1/files through the official SDK, in process and over real HTTP."""

from __future__ import annotations

import io

import httpx
import openai
import pytest


def _blob_files(settings) -> list:
    return [p for p in settings.blobs_dir.rglob("*") if p.is_file()]


def test_upload_retrieve_content_delete(sdk):
    client = sdk()
    payload = bytes(range(256)) * 300 + "中文 ✓\n".encode()
    created = client.files.create(file=("train.jsonl", io.BytesIO(payload)), purpose="fine-tune")
    assert created.id.startswith("file-")
    assert created.object == "file"
    assert created.bytes == len(payload)
    assert created.filename == "train.jsonl"
    assert created.purpose == "fine-tune"
    assert created.status == "processed"
    # every FileObject field is on the wire, nullable ones as explicit nulls
    raw = created.model_dump()
    for field in ("id", "object", "bytes", "created_at", "filename", "purpose", "status", "status_details",
                  "expires_at"):
        assert field in raw
    assert raw["expires_at"] is None and raw["status_details"] is None

    fetched = client.files.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    assert client.files.content(created.id).content == payload

    deleted = client.files.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id
    with pytest.raises(openai.NotFoundError) as err:
        client.files.retrieve(created.id)
    assert err.value.body["message"].startswith("No such File object")
    assert _blob_files(sdk.settings) == []


def test_unknown_id_is_404_in_openai_envelope(sdk):
    client = sdk()
    for call in (client.files.retrieve, client.files.delete, client.files.content):
        with pytest.raises(openai.NotFoundError) as err:
            call("file-doesnotexist")
        assert err.value.status_code == 404
        assert set(err.value.body) == {"message", "type", "param", "code"}
        assert err.value.type == "invalid_request_error"


def test_list_paginates_beyond_limit_and_terminates(sdk):
    client = sdk()
    ids = [client.files.create(file=(f"f{i}.txt", io.BytesIO(b"x" * i)), purpose="assistants").id
           for i in range(7)]
    client.files.create(file=("other.jsonl", io.BytesIO(b"{}")), purpose="fine-tune")

    first = client.files.list(limit=3, purpose="assistants")
    assert [f.id for f in first.data] == ids[::-1][:3]
    assert first.has_more is True
    raw = first.model_dump()
    assert raw["first_id"] == ids[-1] and raw["last_id"] == ids[-3]

    everything = [f.id for f in client.files.list(limit=3, purpose="assistants")]  # SDK auto-pagination
    assert everything == ids[::-1]
    ascending = [f.id for f in client.files.list(limit=2, purpose="assistants", order="asc")]
    assert ascending == ids
    assert len(list(client.files.list())) == 8
    last_page = client.files.list(limit=3, purpose="assistants", after=ids[1])
    assert [f.id for f in last_page.data] == [ids[0]] and last_page.has_more is False


def test_bad_purpose_and_malformed_bodies_are_400(sdk):
    client = sdk()
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("a.jsonl", io.BytesIO(b"{}")), purpose="training")  # type: ignore[arg-type]
    assert err.value.param == "purpose"
    assert "fine-tune" in err.value.message

    # a JSON body where multipart is expected
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/files", body={"purpose": "fine-tune"}, cast_to=httpx.Response)
    assert err.value.body["type"] == "invalid_request_error"

    # malformed JSON on a JSON endpoint: 400 in the envelope, never FastAPI's 422 {"detail": ...}
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/models", content=b"{not json", options={"headers": {"content-type": "application/json"}},
                    cast_to=httpx.Response)
    assert err.value.status_code == 400 and "detail" not in err.value.body
    assert _blob_files(sdk.settings) == []


def test_missing_file_part_and_bad_limit(sdk):
    client = sdk()
    with pytest.raises(openai.BadRequestError) as err:
        client.post("/files", body={"purpose": "fine-tune"}, files=[("other", ("a.txt", b"x"))],
                    options={"headers": {"content-type": "multipart/form-data"}}, cast_to=httpx.Response)
    assert err.value.param == "file"
    with pytest.raises(openai.BadRequestError) as err:
        client.files.list(limit=0)
    assert err.value.param == "limit"
    assert _blob_files(sdk.settings) == []


def test_filename_cannot_escape_the_store(sdk):
    client = sdk()
    created = client.files.create(file=("../../../etc/passwd", io.BytesIO(b"hi")), purpose="user_data")
    assert created.filename == "passwd"
    stored = _blob_files(sdk.settings)
    assert len(stored) == 1 and sdk.settings.blobs_dir in stored[0].parents
    assert "passwd" not in stored[0].name


def test_expires_after(sdk):
    client = sdk()
    created = client.files.create(file=("b.jsonl", io.BytesIO(b"{}")), purpose="batch",
                                  expires_after={"anchor": "created_at", "seconds": 3600})
    assert created.expires_at == created.created_at + 3600
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=("b.jsonl", io.BytesIO(b"{}")), purpose="batch",
                            expires_after={"anchor": "created_at", "seconds": 5})
    assert err.value.param == "expires_after.seconds"


def test_over_limit_upload_is_413_and_leaves_nothing(make_settings, live_server):
    settings = make_settings(max_upload_bytes=64 * 1024)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        client.files.create(file=("ok.bin", io.BytesIO(b"a" * 1000)), purpose="user_data")
        for size in (64 * 1024 + 1, 5 * 1024 * 1024):  # just over (checked while streaming) and far over
            with pytest.raises(openai.APIStatusError) as err:
                client.files.create(file=("big.bin", io.BytesIO(b"b" * size)), purpose="user_data")
            assert err.value.status_code == 413
            assert err.value.body["code"] == "file_too_large"
        assert [f.filename for f in client.files.list()] == ["ok.bin"]
        stored = _blob_files(settings)
        assert len(stored) == 1 and stored[0].stat().st_size == 1000  # no partial upload anywhere

        # chunked upload without Content-Length: the limit still holds while streaming
        def body():
            yield (b"--xyz\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nuser_data\r\n"
                   b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.bin\"\r\n\r\n")
            for _ in range(40):
                yield b"c" * 4096
            yield b"\r\n--xyz--\r\n"

        response = httpx.post(server.base_url + "/files", content=body(),
                              headers={"content-type": "multipart/form-data; boundary=xyz"})
        assert response.status_code == 413
        assert len(_blob_files(settings)) == 1


async def test_async_client_in_process(settings):
    from tuneforge.api.app import build_app

    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key="k", http_client=http)
            created = await client.files.create(file=("a.jsonl", b'{"a": 1}\n'), purpose="fine-tune")
            assert (await client.files.retrieve(created.id)).bytes == 9
            assert (await client.files.content(created.id)).content == b'{"a": 1}\n'
            listed = [f.id async for f in client.files.list(limit=1)]
            assert listed == [created.id]
            assert (await client.files.delete(created.id)).deleted
            models = await client.models.list()
            assert "smollm2-135m-instruct" in [m.id for m in models.data]


async def test_async_client_over_real_http(settings, live_server):
    with live_server(settings) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        created = [await client.files.create(file=(f"{i}.txt", b"z"), purpose="user_data") for i in range(4)]
        assert [f.id async for f in client.files.list(limit=2)] == [c.id for c in created][::-1]
        with pytest.raises(openai.NotFoundError):
            await client.files.retrieve("file-nope")
        await client.close()


def test_files_survive_a_restart(settings, live_server):
    payloads = {f"doc{i}.jsonl": (f'{{"i": {i}}}\n' * (i + 1)).encode() for i in range(3)}
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        ids = {client.files.create(file=(name, io.BytesIO(data)), purpose="fine-tune").id: data
               for name, data in payloads.items()}
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        assert {f.id for f in client.files.list()} == set(ids)
        for file_id, data in ids.items():
            assert client.files.content(file_id).content == data
