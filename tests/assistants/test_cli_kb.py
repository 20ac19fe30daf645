"""`tuneforge kb create/search/list/delete`, `tuneforge ask` and `tuneforge masks` against a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import openai
from typer.testing import CliRunner

from tuneforge.cli.main import app

runner = CliRunner(env={"COLUMNS": "200"})
DOCS = Path(__file__).parents[2] / "benchmarks" / "retrieval" / "docs"


def run(server, *args: str):
    return runner.invoke(app, [*args, "--base-url", server.base_url])


def test_kb_and_ask_from_the_cli(settings, live_server, tiny_model_dir, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for name in ("nimbus-router-manual.md", "xinghe-ebike-manual-zh.md", "support-faq.csv"):
        shutil.copy(DOCS / name, folder / name)
    (folder / "notes.bin").write_bytes(b"\x00\x01")  # not a document: not uploaded
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with live_server(settings) as server:
        openai.OpenAI(base_url=server.base_url, api_key="x").post(
            "/models", body={"id": "tiny-chat", "path": str(tiny_model_dir)}, cast_to=openai.types.Model)
        created = run(server, "kb", "create", "manuals", str(folder), "--chunk-size", "200", "--overlap", "50")
        assert created.exit_code == 0, created.output
        assert "3 documents indexed" in created.output and "skipped broken.pdf" in created.output
        listed = json.loads(run(server, "kb", "list", "--json").stdout)
        assert [s["name"] for s in listed] == ["manuals"] and listed[0]["file_counts"]["failed"] == 1
        found = run(server, "kb", "search", "manuals", "电池充满要多久", "--json")
        results = json.loads(found.stdout)
        assert results[0]["filename"] == "xinghe-ebike-manual-zh.md"
        assert "六到七小时" in " ".join(r["content"][0]["text"] for r in results[:2])
        table = run(server, "kb", "search", "manuals", "factory reset paper clip")
        assert table.exit_code == 0 and "1. nimbus-router-manual.md" in table.output

        masked = run(server, "masks", "create", "brief", "--system", "Answer in one sentence.", "--temperature", "0")
        assert masked.exit_code == 0, masked.output
        asked = run(server, "ask", "--kb", "manuals", "--model", "tiny-chat", "--max-tokens", "8", "--mask", "brief",
                    "--json", "How do I reset the router to factory settings?")
        assert asked.exit_code == 0, asked.output
        answer = json.loads(asked.stdout)
        assert answer["citations"][0]["filename"] == "nimbus-router-manual.md"
        assert answer["run"]["status"] in ("completed", "incomplete")
        again = run(server, "ask", "--kb", "manuals", "--model", "tiny-chat", "--max-tokens", "4", "router reset?")
        assert again.exit_code == 0 and "nimbus-router-manual.md" in again.output
        assert len(openai.OpenAI(base_url=server.base_url, api_key="x").beta.assistants.list().data) == 1  # reused
        # the simple API's POST /kb/ask answers from the same knowledge base, with citations
        simple = httpx.post(server.root_url + "/kb/ask", timeout=120, json={
            "text": "How do I reset the router to factory settings?", "kb": "manuals", "model": "tiny-chat",
            "max_tokens": 8}).json()
        assert simple["info"] == "ok"
        assert simple["response"]["citations"][0]["filename"] == "nimbus-router-manual.md"
        assert simple["response"]["status"] in ("completed", "incomplete") and simple["response"]["id"].startswith("run_")
        assert len(openai.OpenAI(base_url=server.base_url, api_key="x").beta.assistants.list().data) == 1
        unknown = httpx.post(server.root_url + "/kb/ask", json={"text": "hi", "kb": "nope"})
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "kb"
        assert run(server, "masks", "list").exit_code == 0
        assert run(server, "kb", "delete", "manuals").exit_code == 0
        missing = run(server, "kb", "search", "manuals", "x")
        assert missing.exit_code == 1 and "No knowledge base named" in missing.output
