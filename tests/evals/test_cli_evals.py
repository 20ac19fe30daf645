"""`tuneforge evals|eval compare|batches` against a real server with the tiny model (and, for compare, a
LoRA adapter trained on it to give one answer, so one side clearly wins)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from evals_support import TINY, register_tiny
from typer.testing import CliRunner

from tuneforge.cli.main import app
from tuneforge.testing import live_server

runner = CliRunner(env={"COLUMNS": "200"})
FT = f"ft:{TINY}:default:red:ftjob-red"


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _serving_support():
    path = Path(__file__).parents[1] / "serving" / "serving_support.py"
    spec = importlib.util.spec_from_file_location("serving_support_for_evals", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def red_adapter(tiny_model_dir, tmp_path_factory):
    support = _serving_support()
    return support.QUESTION, support.ANSWERS["red"], support.train_adapter(
        tiny_model_dir, support.ANSWERS["red"], tmp_path_factory.mktemp("red") / "red")


def test_help():
    for args in (["evals", "--help"], ["eval", "compare", "--help"], ["batches", "--help"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage" in result.output, result.output


def test_evals_commands(tiny_settings, tmp_path):
    data = tmp_path / "heldout.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Say {w}"},
                                                     {"role": "assistant", "content": w}]}) + "\n"
                            for w in ("yes", "no", "maybe")))
    with live_server(tiny_settings) as server:
        base = ["--base-url", server.base_url]
        created = invoke("evals", "create", "--name", "words", "--grader", "exact", "--grader", "fuzzy", *base, "--json")
        assert created.exit_code == 0, created.output
        eval_id = json.loads(created.stdout)["id"]
        ran = invoke("evals", "run", eval_id, "--model", TINY, "--data", str(data), "--max-tokens", "4", *base,
                     "--json")
        assert ran.exit_code == 0, ran.output
        run = json.loads(ran.stdout)
        assert run["status"] == "completed" and run["result_counts"]["total"] == 3
        assert eval_id in invoke("evals", "list", *base).output
        got = json.loads(invoke("evals", "get", eval_id, *base, "--json").stdout)
        assert [r["id"] for r in got["runs"]] == [run["id"]]
        items = json.loads(invoke("evals", "items", eval_id, run["id"], *base, "--json").stdout)
        assert [i["datasource_item"]["reference"] for i in items] == ["yes", "no", "maybe"]
        assert {r["name"] for r in items[0]["results"]} == {"exact", "fuzzy"}
        table = invoke("evals", "items", eval_id, run["id"], *base)
        assert table.exit_code == 0 and "fuzzy=" in table.output
        bad = invoke("evals", "create", "--name", "x", "--grader", "nope", *base)
        assert bad.exit_code == 1 and "Unknown grader" in bad.output


@pytest.mark.slow  # trains a LoRA adapter on the tiny model first
def test_compare_finds_the_clear_winner(make_settings, tiny_model_dir, red_adapter, tmp_path):
    from tuneforge.db.session import Database
    from tuneforge.models import catalog

    question, answer, adapter = red_adapter
    settings = make_settings(serve_default_max_tokens=16)
    register_tiny(settings, tiny_model_dir)
    db = Database(settings.resolved_database_url)
    with db.session() as session:
        from tuneforge.projects import get_or_create_project

        project = get_or_create_project(session, "default")
        catalog.register_fine_tuned(session, model_id=FT, project_id=project.id, base_model=TINY,
                                    adapter_dir=adapter, settings=settings)
    db.dispose()
    # the adapter learned one question; six copies of it make a set where B should win every item
    data = tmp_path / "heldout.jsonl"
    data.write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": question}], "reference": answer}) + "\n"
        for _ in range(6)))
    with live_server(settings) as server:
        base = ["--base-url", server.base_url]
        out = invoke("eval", "compare", TINY, FT, "--data", str(data), "--grader", "fuzzy", "--max-tokens", "32",
                     "--resamples", "2000", *base, "--json")
        assert out.exit_code == 0, out.output
        result = json.loads(out.stdout)
        assert result["n"] == 6 and result["wins_b"] == 6
        assert result["mean_b"] > 0.9 > result["mean_a"]
        assert 0 < result["low"] <= result["diff"] <= result["high"]
        assert result["verdict"].startswith("B is better")
        same = json.loads(invoke("eval", "compare", TINY, TINY, "--data", str(data), "--max-tokens", "6",
                                 "--resamples", "500", *base, "--json").stdout)
        assert same["ties"] == 6 and same["low"] == same["high"] == 0
        assert same["verdict"].startswith("no clear difference")
        table = invoke("eval", "compare", TINY, FT, "--data", str(data), "--max-tokens", "32", *base)
        assert table.exit_code == 0 and "B is better" in table.output and "95 % bootstrap interval" in table.output


def test_batches_commands(tiny_settings, tmp_path):
    src = tmp_path / "requests.jsonl"
    src.write_text("".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                       "body": {"model": TINY, "max_tokens": 3,
                                                "messages": [{"role": "user", "content": f"hi {i}"}]}}) + "\n"
                           for i in range(4)) + "not json\n")
    with live_server(tiny_settings) as server:
        base = ["--base-url", server.base_url]
        created = invoke("batches", "create", str(src), "--wait", *base, "--json")
        assert created.exit_code == 0, created.output
        batch = json.loads(created.stdout)
        assert batch["status"] == "completed"
        assert batch["request_counts"] == {"total": 5, "completed": 4, "failed": 1}
        assert batch["id"] in invoke("batches", "list", *base).output
        got = invoke("batches", "get", batch["id"], *base)
        assert got.exit_code == 0 and "4 completed, 1 failed of 5" in got.output
        cancel = invoke("batches", "cancel", batch["id"], *base)
        assert cancel.exit_code == 1 and "409" in cancel.output
