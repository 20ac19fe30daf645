"""Issue #10: deeply nested JSON is a per-line issue everywhere (F2), file checks never show the blob's
path (F11), and any display name downloads with a valid Content-Disposition (F7)."""

from __future__ import annotations

import io
import json
import time
from urllib.parse import unquote

import httpx
import openai

DEEP = b"[" * 100_000 + b"]" * 100_000
GOOD = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


def _deep_file(client) -> str:
    data = (GOOD + "\n").encode() + DEEP + b"\n" + (GOOD + "\n").encode()
    return client.files.create(file=("deep.jsonl", io.BytesIO(data)), purpose="fine-tune").id


def test_check_reports_deep_nesting_per_line_without_server_paths(sdk):
    client = sdk()
    file_id = _deep_file(client)
    report = client.post(f"/files/{file_id}/check", body={"tokenizer": "cl100k_base"}, cast_to=httpx.Response).json()
    issues = {i["code"]: i for i in report["issues"]}
    assert issues["json_too_deep"]["lines"] == [2], report["issues"]
    assert report["valid_examples"] == 2 and report["ok"] is False
    assert report["path"] == "deep.jsonl"
    text = json.dumps(report)
    assert str(sdk.settings.data_dir) not in text and "blobs" not in text


def test_a_job_on_a_deeply_nested_file_fails_with_the_line(make_settings, live_server):
    settings = make_settings(worker_poll_s=0.2)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        job = client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=_deep_file(client))
        deadline = time.monotonic() + 120
        while job.status in ("validating_files", "queued") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "failed", job
    assert "Line 2" in job.error.message and "Recursion" not in job.error.message, job.error.message
    assert str(settings.data_dir) not in job.error.message


def _raw_upload(base_url: str, name: bytes) -> dict:
    """A multipart body written by hand: clients percent-encode odd names, an attacker sends raw bytes."""
    boundary = b"xXxBoundary"
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n--'
            + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + name
            + b'"\r\nContent-Type: text/plain\r\n\r\npayload\r\n--' + boundary + b"--\r\n")
    response = httpx.post(base_url + "/files", content=body, headers={
        "content-type": "multipart/form-data; boundary=" + boundary.decode(), "authorization": "Bearer sk-test"})
    assert response.status_code == 200, response.text
    return response.json()


def test_any_filename_downloads_with_an_rfc6266_header(settings, live_server):
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        for raw, shown in [(b"a\x01.txt", "a.txt"), ("数据 v2.jsonl".encode(), "数据 v2.jsonl"), (b"..", "upload"),
                           (b"tab\there\x7f.md", "tabhere.md")]:
            created = _raw_upload(server.base_url, raw)
            assert created["filename"] == shown
            response = client.files.with_raw_response.content(created["id"])  # a response at all (F7)
            assert response.http_response.content == b"payload"
            disposition = response.headers["content-disposition"]
            assert disposition.isascii() and all(" " <= c < "\x7f" for c in disposition)
            assert unquote(disposition.split("filename*=UTF-8''")[1]) == shown


def test_the_header_encodes_names_that_are_already_stored():
    """Rows written before names were cleaned still get a valid header."""
    from tuneforge.api.http import attachment

    value = attachment("a\x01b\"\\.txt")
    assert value.isascii() and all(c >= " " for c in value)
    assert 'filename="a_b__.txt"' in value
    assert unquote(value.split("filename*=UTF-8''")[1]) == "a\x01b\"\\.txt"
