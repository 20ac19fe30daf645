"""Server-core behaviour: 500s hide internals, request ids, structured logs."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient


def test_unhandled_error_is_500_envelope_without_trace(settings, caplog):
    from tuneforge.api.app import build_app

    app = build_app(settings)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"x-request-id": "req-abc"})
    assert response.status_code == 500
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "server_error"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] == "req-abc"


def test_every_response_has_a_request_id(settings):
    from tuneforge.api.app import build_app

    with TestClient(build_app(settings)) as client:
        first = client.get("/health").headers["x-request-id"]
        second = client.get("/v1/files/nope").headers["x-request-id"]
    assert first.startswith("req_") and second.startswith("req_") and first != second


def test_json_log_lines_carry_request_id_and_fields():
    from tuneforge.logging_setup import JsonFormatter, _RequestIdFilter, request_id_var

    record = logging.LogRecord("tuneforge.api", logging.INFO, __file__, 1, "GET %s -> %s", ("/v1/files", 200), None)
    record.fields = {"ms": 1.5}
    token = request_id_var.set("req_1")
    try:
        _RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "GET /v1/files -> 200" and line["request_id"] == "req_1" and line["ms"] == 1.5
    assert line["level"] == "info" and line["ts"].endswith("Z")


def test_importing_the_app_loads_no_ml_framework():
    """Start-up stays fast: torch/transformers load with the first request that needs a model."""
    import subprocess
    import sys

    code = "import sys, tuneforge.api.app, tuneforge.cli.main; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
