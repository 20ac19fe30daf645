"""POST /v1/files/{id}/check (tuneforge extension): the data toolkit's report for an uploaded file."""

from __future__ import annotations

import io
import json

import httpx
import openai
import pytest


def _chat(i: int) -> dict:
    return {"messages": [{"role": "system", "content": "You are Marv."},
                         {"role": "user", "content": f"Question number {i}?"},
                         {"role": "assistant", "content": f"Answer number {i}, obviously."}]}


def _upload(client, lines: list[str]) -> str:
    data = ("\n".join(lines) + "\n").encode()
    return client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune").id


def test_check_reports_errors_with_line_numbers(sdk):
    client = sdk()
    lines = [json.dumps(_chat(i)) for i in range(12)]
    lines[3] = '{"messages": [{"role": "user", "content": "no answer"}]}'
    lines[7] = "{broken json"
    file_id = _upload(client, lines)
    report = client.post(f"/files/{file_id}/check", body={"tokenizer": "cl100k_base"}, cast_to=httpx.Response).json()
    assert report["object"] == "tuneforge.file_check" and report["file_id"] == file_id
    assert report["ok"] is False
    by_code = {issue["code"]: issue for issue in report["issues"]}
    assert by_code["example_missing_assistant_message"]["lines"] == [4]
    assert by_code["invalid_json"]["lines"] == [8]
    assert report["exit_code"] == 1 and report["examples"] == 11 and report["lines"] == 12


def test_check_clean_file_with_the_default_models_tokenizer(sdk):
    client = sdk()
    file_id = _upload(client, [json.dumps(_chat(i)) for i in range(12)])
    report = client.post(f"/files/{file_id}/check", cast_to=httpx.Response).json()
    assert report["ok"] is True, report
    assert report["examples"] == 12 and report["errors"] == 0
    assert "smollm2" in json.dumps(report["tokenizer"]).lower()
    assert report["stats"]["tokens"]["total"] > report["stats"]["assistant_tokens"]["total"] > 0
    assert report["max_tokens"] == 8192  # SmolLM2's context, from the registry


def test_check_unknown_file_and_bad_tokenizer(sdk):
    client = sdk()
    with pytest.raises(openai.NotFoundError):
        client.post("/files/file-nope/check", cast_to=httpx.Response)
    file_id = _upload(client, [json.dumps(_chat(0))])
    with pytest.raises(openai.BadRequestError) as err:
        client.post(f"/files/{file_id}/check", body={"tokenizer": "p50k"}, cast_to=httpx.Response)
    assert err.value.param == "tokenizer"
    with pytest.raises(openai.NotFoundError) as err:
        client.post(f"/files/{file_id}/check", body={"model": "no-such-model"}, cast_to=httpx.Response)
    assert err.value.code == "model_not_found"
