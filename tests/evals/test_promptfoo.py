"""promptfoo (npm) runs an eval config against tuneforge through its OpenAI provider (``apiBaseUrl``).

promptfoo is large (~1.4 GB of node_modules) and is not installed by the project: the test runs when a
``promptfoo`` executable is on PATH or named by ``PROMPTFOO_BIN`` (``npm install promptfoo`` in any folder,
then ``PROMPTFOO_BIN=<folder>/node_modules/.bin/promptfoo``) and is skipped with that reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import openai
import pytest
from evals_support import TINY

from tuneforge.testing import live_server

PROMPTFOO = os.environ.get("PROMPTFOO_BIN") or shutil.which("promptfoo")


@pytest.mark.skipif(not PROMPTFOO or not shutil.which("node"),
                    reason="promptfoo not installed (npm install promptfoo; set PROMPTFOO_BIN) or node missing")
def test_promptfoo_eval_against_tuneforge(tiny_settings, tmp_path):
    with live_server(tiny_settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        questions = ["What is 2 + 2?", "Name a colour."]
        params = {"max_tokens": 6, "temperature": 0, "seed": 1}
        # what the tiny model answers at temperature 0, asked directly through the SDK
        expected = [client.chat.completions.create(
            model=TINY, messages=[{"role": "user", "content": f"Answer briefly: {q}"}], **params
        ).choices[0].message.content for q in questions]
        config = {
            "description": "tuneforge through promptfoo's OpenAI provider",
            "prompts": ["Answer briefly: {{question}}"],
            "providers": [{"id": f"openai:chat:{TINY}",
                           "config": {"apiBaseUrl": server.base_url, "apiKey": "sk-test", **params}}],
            "tests": [
                {"vars": {"question": questions[0]}, "assert": [{"type": "equals", "value": expected[0]}]},
                {"vars": {"question": questions[1]}, "assert": [{"type": "equals", "value": expected[1]}]},
                # must fail: proves promptfoo grades what tuneforge answered
                {"vars": {"question": questions[0]}, "assert": [{"type": "equals", "value": "not the answer"}]},
            ],
        }
        (tmp_path / "promptfooconfig.json").write_text(json.dumps(config))
        env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
               "PROMPTFOO_CONFIG_DIR": str(tmp_path / "pf-home"), "OPENAI_API_KEY": "sk-test",
               "PROMPTFOO_DISABLE_SHARING": "1"}
        out = tmp_path / "results.json"
        proc = subprocess.run([PROMPTFOO, "eval", "-c", str(tmp_path / "promptfooconfig.json"), "-o", str(out),
                               "--no-cache", "--no-table", "--no-progress-bar"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    rows = results["results"]
    assert [r["success"] for r in sorted(rows, key=lambda r: r["testIdx"])] == [True, True, False]
    assert sorted(r["response"]["output"] for r in rows if r["success"]) == sorted(expected)
    assert results["stats"]["successes"] == 2 and results["stats"]["failures"] == 1
