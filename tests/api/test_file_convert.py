"""POST /v1/files/{id}/convert and GET /v1/me (tuneforge extensions the web console uses)."""

from __future__ import annotations

import io
import json

import httpx
import openai
import pytest

QA_CSV = "问题,答案\n" + "".join(f"第{i}个问题是什么？,这是第{i}个答案。\n" for i in range(12))
CUSTOM_CSV = "q_text,a_text,topic\n" + "".join(f"Question {i}?,Answer {i}.,t{i}\n" for i in range(12))


def _upload(client, name: str, text: str, purpose: str = "user_data") -> str:
    return client.files.create(file=(name, io.BytesIO(text.encode("utf-8"))), purpose=purpose).id


def _convert(client, file_id: str, **body) -> dict:
    return client.post(f"/files/{file_id}/convert", body=body, cast_to=httpx.Response).json()


def test_detects_a_question_answer_table_and_saves_a_checked_training_file(sdk):
    client = sdk()
    file_id = _upload(client, "faq.csv", QA_CSV)
    preview = _convert(client, file_id, preview=2)
    assert preview["object"] == "tuneforge.file_conversion" and preview["shape"] == "qa_table"
    assert "'问题' → user" in preview["detected"] and preview["keys"] == ["问题", "答案"]
    assert preview["sample"] == {"问题": "第0个问题是什么？", "答案": "这是第0个答案。"}
    assert preview["preview"][1]["messages"] == [{"role": "user", "content": "第1个问题是什么？"},
                                                 {"role": "assistant", "content": "这是第1个答案。"}]
    assert preview["file"] is None and preview["written"] is None
    before = {f.id for f in client.files.list()}

    saved = _convert(client, file_id, save=True, system="Be brief.", preview=0)
    assert saved["written"] == 12 and saved["dropped_count"] == 0 and saved["preview"] == []
    new = saved["file"]
    assert new["id"] not in before and new["purpose"] == "fine-tune" and new["filename"] == "faq.jsonl"
    rows = [json.loads(line) for line in client.files.content(new["id"]).text.splitlines()]
    assert len(rows) == 12 and rows[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    report = client.post(f"/files/{new['id']}/check", body={"tokenizer": "cl100k_base"}, cast_to=httpx.Response).json()
    assert report["ok"] is True and report["examples"] == 12
    hist = report["stats"]["token_histogram"]
    assert sum(hist["counts"]) == 12 and len(hist["edges"]) == len(hist["counts"]) + 1


def test_unknown_columns_need_a_map_and_bad_maps_are_400s(sdk):
    client = sdk()
    file_id = _upload(client, "custom.csv", CUSTOM_CSV)
    with pytest.raises(openai.BadRequestError) as err:
        _convert(client, file_id)
    body = err.value.response.json()["error"]
    assert "could not recognise" in body["message"] and "q_text" in body["message"]
    assert "/" not in body["message"].split("(keys")[0]  # no server folder in the message

    mapped = _convert(client, file_id, map=["user=q_text", "assistant=a_text"], save=True)
    assert mapped["shape"] == "mapped" and mapped["written"] == 12
    assert mapped["preview"][0]["messages"][1] == {"role": "assistant", "content": "Answer 0."}

    with pytest.raises(openai.BadRequestError) as err:
        _convert(client, file_id, map=["nonsense"])
    assert err.value.response.json()["error"]["param"] == "map"
    with pytest.raises(openai.BadRequestError):
        _convert(client, file_id, preview=500)
    with pytest.raises(openai.NotFoundError):
        _convert(client, "file-missing")


def test_me_says_single_user_mode(sdk):
    me = sdk().get("/me", cast_to=httpx.Response).json()
    assert me == {"object": "tuneforge.principal", "project": "default", "project_id": me["project_id"],
                  "key_id": None, "auth": "single_user"}


def test_console_is_served_and_the_root_redirects(settings):
    from fastapi.testclient import TestClient

    from tuneforge.api.app import build_app

    with TestClient(build_app(settings)) as http:
        root = http.get("/", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"] == "/console/"
        page = http.get("/console/")
        assert page.status_code == 200 and 'src="js/app.js"' in page.text
        script = http.get("/console/js/pages/playground.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert http.get("/console/js/nope.js").status_code == 404


def test_a_map_that_converts_nothing_saves_nothing(sdk):
    client = sdk()
    file_id = _upload(client, "custom.csv", CUSTOM_CSV)
    before = len(list(client.files.list()))
    with pytest.raises(openai.BadRequestError) as err:
        _convert(client, file_id, map=["user=missing_column", "assistant=a_text"], save=True)
    body = err.value.response.json()["error"]
    assert body["message"].startswith("No record could be converted (line 2:") and body["param"] == "map"
    assert len(list(client.files.list())) == before
    with pytest.raises(openai.BadRequestError):
        _convert(client, file_id, shape="not-a-shape")
