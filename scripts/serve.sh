#!/usr/bin/env bash
# Install (if needed) and start the server on the embedded defaults: SQLite + files under ./.tuneforge
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
exec .venv/bin/tuneforge serve --data-dir "${TUNEFORGE_DATA_DIR:-./.tuneforge}" "$@"
