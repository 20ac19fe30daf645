"""Schema fuzzing (issue #10): schemathesis generates requests for every operation in /openapi.json and
sends them to a real uvicorn. No answer may be a 5xx, carry a status the operation does not document,
or show a server path or a traceback.

Generation is kept cheap: half the cases that name a model use a tiny random model, with budgets of a few
tokens. ``TUNEFORGE_FUZZ_EXAMPLES`` raises the examples per operation (the default keeps the run short;
``benchmarks/``-style probes set it higher).
"""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES = int(os.environ.get("TUNEFORGE_FUZZ_EXAMPLES", "6"))
TIMEOUT_S = 60
TOKEN_BUDGETS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "max_prompt_tokens")


def _cheap(body, path: str):
    """Keep generation tiny (a fuzzer's max_tokens=10**9 on a CPU is a slow test, not a finding)."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if isinstance(body.get("model"), str) and zlib.crc32(json.dumps(body, sort_keys=True, default=str).encode()) % 2:
        body["model"] = "tiny-chat"
    for key in TOKEN_BUDGETS:
        if isinstance(body.get(key), int) and not isinstance(body[key], bool) and body[key] > 4:
            body[key] = 4
    if path.endswith(("/completions", "/kb/ask")):
        body.setdefault("max_tokens", 4)
    elif path.endswith(("/runs", "/responses")):
        body.setdefault("max_completion_tokens", 4)
    if isinstance(body.get("n"), int) and not isinstance(body["n"], bool) and body["n"] > 2:
        body["n"] = 2
    return body


def _bind(check, op, documented):
    def one_case(case):  # @given wants a plain function of the drawn arguments only
        check(op, documented, case)
    return one_case


def fuzz(server, settings, examples: int) -> dict:
    """Every operation, ``examples`` cases each; returns the figures and every finding."""
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings

    schema = schemathesis.openapi.from_url(server.root_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    stats: Counter = Counter()
    findings: list[str] = []
    secrets = [str(settings.data_dir), str(settings.blobs_dir), "Traceback (most recent call last)"]
    def check(op, documented: set[str], case) -> None:
        if isinstance(case.body, dict):
            case.body = _cheap(case.body, op.path)
        try:
            response = case.call(base_url=server.root_url, timeout=TIMEOUT_S)
        except Exception as exc:  # a hung or dropped request is a finding too, not a crash of the fuzzer
            stats["cases"] += 1
            findings.append(f"no response ({type(exc).__name__}): {op.method.upper()} {op.path} "
                            f"query={case.query!r} body={str(case.body)[:200]}")
            return
        stats["cases"] += 1
        stats[f"{response.status_code // 100}xx"] += 1
        where = f"{op.method.upper()} {op.path} -> {response.status_code}"
        if response.status_code >= 500 and response.status_code not in (502, 503):
            findings.append(f"server error: {where}: {response.text[:300]}")
        if str(response.status_code) not in documented and "default" not in documented:
            findings.append(f"undocumented status: {where}")
        for secret in secrets:
            if secret in response.text:
                findings.append(f"leak ({secret[:20]}...): {where}")

    for op in operations:
        documented = set(op.definition.raw.get("responses", {}))
        test = given(case=op.as_strategy())(_bind(check, op, documented))
        hsettings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))(test)()
    stats["operations"] = len(operations)
    return {"stats": dict(stats), "findings": findings}


@pytest.fixture
def fuzz_settings(make_settings, tiny_model_dir):
    from tuneforge.db.session import Database
    from tuneforge.models.registry import ModelRegistry

    # the operator's default budget keeps /chat (which has no max_tokens) cheap
    settings = make_settings(worker_in_process=False, ingest_file_timeout_s=60, default_model="tiny-chat",
                             serve_default_max_tokens=4)
    settings.ensure_dirs()
    db = Database(settings.resolved_database_url)
    db.migrate()
    ModelRegistry(settings, db).register("tiny-chat", str(tiny_model_dir), None)
    db.dispose()
    return settings


def test_fuzz_every_operation(fuzz_settings, live_server):
    with live_server(fuzz_settings) as server:
        result = fuzz(server, fuzz_settings, EXAMPLES)
    print("fuzz figures:", json.dumps(result["stats"], sort_keys=True))
    assert result["stats"]["operations"] >= 70
    assert result["findings"] == []
