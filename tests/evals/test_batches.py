"""/v1/batches through the official SDK against a real server with the tiny model."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest
from evals_support import TINY

from tuneforge.testing import live_server


@pytest.fixture
def server(tiny_settings):
    with live_server(tiny_settings) as srv:
        yield srv


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)


def upload(client, lines, purpose="batch"):
    data = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    return client.files.create(file=("in.jsonl", io.BytesIO(data.encode())), purpose=purpose)


def chat_line(custom_id, content="Hello", **body):
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": TINY, "messages": [{"role": "user", "content": content}], "max_tokens": 4, **body}}


def wait(client, batch_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch still {batch.status}")


def read_lines(client, file_id):
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines() if x.strip()]


def test_chat_batch_with_bad_lines(client):
    lines = [chat_line(f"req-{i}", f"Question {i}", temperature=0) for i in range(6)]
    lines.insert(2, "{not json")
    lines.insert(4, {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {}})  # dup id
    lines.append({"custom_id": "wrong-url", "method": "POST", "url": "/v1/embeddings", "body": {}})
    lines.append({"custom_id": "bad-body", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": TINY, "messages": "nope"}})
    lines.append(chat_line("unknown-model") | {"body": {"model": "no-such-model", "messages": [
        {"role": "user", "content": "x"}]}})
    f = upload(client, lines)
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"k": "v"})
    assert batch.object == "batch" and batch.status in ("validating", "in_progress") and batch.metadata == {"k": "v"}
    batch = wait(client, batch.id)
    assert batch.status == "completed", batch
    assert batch.request_counts.model_dump() == {"total": 11, "completed": 6, "failed": 5}
    out = read_lines(client, batch.output_file_id)
    assert [o["custom_id"] for o in out] == [f"req-{i}" for i in range(6)]
    assert all(o["response"]["status_code"] == 200 and o["error"] is None for o in out)
    assert out[0]["response"]["body"]["object"] == "chat.completion"
    assert out[0]["response"]["body"]["usage"]["completion_tokens"] <= 4
    errors = {e["custom_id"]: e for e in read_lines(client, batch.error_file_id)}
    assert set(errors) == {None, "req-1", "wrong-url", "bad-body", "unknown-model"}
    assert errors[None]["error"]["code"] == "invalid_json_line" and errors[None]["error"]["line"] == 3
    assert errors["req-1"]["error"]["code"] == "duplicate_custom_id"
    assert errors["wrong-url"]["error"]["code"] == "mismatched_url"
    assert errors["bad-body"]["error"]["param"] == "messages"
    assert errors["unknown-model"]["response"]["status_code"] == 404
    assert batch.usage.output_tokens > 0
    # the output file is a normal file of the project
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    assert batch.id in [b.id for b in client.batches.list()]


def test_completions_and_embeddings_batches(client):
    f = upload(client, [{"custom_id": "a", "method": "POST", "url": "/v1/completions",
                         "body": {"model": TINY, "prompt": "Once upon", "max_tokens": 3}}])
    batch = wait(client, client.batches.create(input_file_id=f.id, endpoint="/v1/completions",
                                               completion_window="24h").id)
    assert batch.request_counts.completed == 1
    assert read_lines(client, batch.output_file_id)[0]["response"]["body"]["object"] == "text_completion"
    f = upload(client, [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
                         "body": {"model": "multilingual-e5-small", "input": f"text {i}"}} for i in range(3)])
    batch = wait(client, client.batches.create(input_file_id=f.id, endpoint="/v1/embeddings",
                                               completion_window="24h").id)
    assert batch.request_counts.completed == 3
    body = read_lines(client, batch.output_file_id)[2]["response"]["body"]
    assert len(body["data"][0]["embedding"]) == 384


def test_cancel_keeps_partial_output(client):
    f = upload(client, [chat_line(f"r{i}", max_tokens=16) for i in range(60)])
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.time() + 60
    while client.batches.retrieve(batch.id).request_counts.completed < 1 and time.time() < deadline:
        time.sleep(0.05)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    batch = wait(client, batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    done = batch.request_counts.completed
    assert 1 <= done < 60 and batch.request_counts.total == 60
    assert len(read_lines(client, batch.output_file_id)) == done
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(wait(client, client.batches.create(
            input_file_id=upload(client, [chat_line("x")]).id, endpoint="/v1/chat/completions",
            completion_window="24h").id).id)


@pytest.mark.parametrize("kwargs, param", [
    ({"endpoint": "/v1/moderations"}, "endpoint"),
    ({"completion_window": "1h"}, "completion_window"),
])
def test_bad_batches_are_400(client, kwargs, param):
    f = upload(client, [chat_line("a")])
    args = {"input_file_id": f.id, "endpoint": "/v1/chat/completions", "completion_window": "24h", **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(**args)
    assert info.value.body["param"] == param


def test_input_file_checks(client):
    wrong = upload(client, [chat_line("a")], purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as info:
        client.batches.create(input_file_id=wrong.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert "purpose 'batch'" in info.value.body["message"]
    empty = upload(client, [])
    with pytest.raises(openai.BadRequestError):
        client.batches.create(input_file_id=empty.id, endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
