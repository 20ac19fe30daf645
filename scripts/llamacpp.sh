#!/usr/bin/env bash
# Build llama.cpp's llama-server for tuneforge's optional llama.cpp backend (TUNEFORGE_LLAMACPP_MODELS,
# docs/operations.md "Serving on llama.cpp"). The source is the llama.cpp that the llama-cpp-python sdist
# vendors (one pinned release, from PyPI); the build is cached: a second call returns at once.
#   LLAMACPP_VERSION   llama-cpp-python release (default: the one tuneforge pins in gateway/llamacpp.py)
#   TUNEFORGE_LLAMACPP_DIR  where to build (default: ~/.cache/tuneforge/llamacpp/<version>); tuneforge
#                      reads the same variable
#   LLAMACPP_SDIST     a local copy of llama_cpp_python-<version>.tar.gz (default: pip download from PyPI)
#   LLAMACPP_JOBS      parallel compile jobs (default: nproc)
#   LLAMACPP_CMAKE_ARGS extra cmake flags (e.g. -DGGML_NATIVE=OFF for a portable build)
# Options:
#   --bindings PYTHON  also install the llama-cpp-python package into PYTHON's environment, linked to this
#                      build (no second compile), for benchmarks/llamacpp_serve.py. Import it with
#                      LLAMA_CPP_LIB_PATH=<dir>/build/bin (the benchmark sets it).
# Needs a C/C++ compiler, cmake and ninja (or make). Takes ~5 min on 2 idle cores; prints the time taken.
set -euo pipefail
cd "$(dirname "$0")/.."

BINDINGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bindings) BINDINGS="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done

PINNED=$(sed -n 's/^LLAMACPP_VERSION = "\(.*\)"/\1/p' src/tuneforge/gateway/llamacpp.py)
VERSION=${LLAMACPP_VERSION:-$PINNED}
DIR=${TUNEFORGE_LLAMACPP_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tuneforge/llamacpp/$VERSION}
JOBS=${LLAMACPP_JOBS:-$(nproc)}
FLAGS="-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF ${LLAMACPP_CMAKE_ARGS:-}"
STAMP=$DIR/.tuneforge-build-stamp
want="$VERSION $FLAGS"
PY=${PYTHON:-$(command -v python3)}

mkdir -p "$DIR"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$DIR/build/bin/llama-server" ]; then
  echo "==> llama.cpp $VERSION is built: $DIR/build/bin/llama-server ($(cat "$DIR/build-time.txt" 2>/dev/null || echo '?'))"
else
  SDIST=${LLAMACPP_SDIST:-$DIR/llama_cpp_python-$VERSION.tar.gz}
  if [ ! -f "$SDIST" ]; then
    echo "==> downloading the llama-cpp-python $VERSION sdist (~76 MB) from PyPI"
    "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$DIR"
    SDIST=$DIR/llama_cpp_python-$VERSION.tar.gz
  fi
  [ "$SDIST" -ef "$DIR/llama_cpp_python-$VERSION.tar.gz" ] || cp "$SDIST" "$DIR/"
  SRC="$DIR/llama_cpp_python-$VERSION/vendor/llama.cpp"
  if [ ! -f "$SRC/CMakeLists.txt" ]; then
    echo "==> unpacking $SDIST"
    tar xzf "$SDIST" -C "$DIR"
  fi
  # tuneforge finds convert_lora_to_gguf.py here; cmake is given the real path (through the link, the
  # source's relative paths leave the tree and ninja re-runs cmake forever)
  ln -sfn "llama_cpp_python-$VERSION/vendor/llama.cpp" "$DIR/src"
  GEN=""
  command -v ninja >/dev/null && GEN="-G Ninja"
  start=$(date +%s)
  echo "==> configuring (cmake $FLAGS)"
  # shellcheck disable=SC2086
  cmake -S "$SRC" -B "$DIR/build" $GEN $FLAGS > "$DIR/configure.log"
  echo "==> compiling llama-server and libllama with $JOBS jobs (log: $DIR/build.log)"
  cmake --build "$DIR/build" --target llama-server llama -j "$JOBS" > "$DIR/build.log"
  secs=$(( $(date +%s) - start ))
  echo "built in ${secs} s on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end" \
    > "$DIR/build-time.txt"
  echo "$want" > "$STAMP"
  echo "==> llama-server built in ${secs} s: $DIR/build/bin/llama-server"
fi

if [ -n "$BINDINGS" ]; then
  check="import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__ == '$VERSION' else 1)"
  if LLAMA_CPP_LIB_PATH="$DIR/build/bin" "$BINDINGS" -c "$check" 2>/dev/null; then
    echo "==> llama-cpp-python $VERSION is installed for $BINDINGS"
  else
    echo "==> installing llama-cpp-python $VERSION from the sdist into $BINDINGS's environment"
    start=$(date +%s)
    # LLAMA_BUILD=OFF: the package's Python part only, linked at import time to the libllama built above
    CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" "$BINDINGS" -m pip install -q \
      "$DIR/llama_cpp_python-$VERSION.tar.gz"
    LLAMA_CPP_LIB_PATH="$DIR/build/bin" "$BINDINGS" -c "$check"
    echo "==> installed in $(( $(date +%s) - start )) s; import it with LLAMA_CPP_LIB_PATH=$DIR/build/bin"
  fi
fi
