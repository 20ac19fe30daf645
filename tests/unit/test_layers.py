"""The layer rules of docs/architecture.md, enforced: import-linter's contracts (pyproject.toml) must hold."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    result = subprocess.run(command + ["--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_nothing_below_the_edges_imports_the_http_layer():
    """A direct check of the rule new contributors trip over first (the contract covers it too)."""
    offenders = []
    for path in (ROOT / "src" / "tuneforge").rglob("*.py"):
        rel = path.relative_to(ROOT / "src" / "tuneforge")
        if rel.parts[0] in ("api", "cli") or rel.name == "testing.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "from tuneforge.api" in text or "import tuneforge.api" in text:
            offenders.append(str(rel))
    assert offenders == []
