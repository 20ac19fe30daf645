"""llama.cpp's ``llama-server`` as the serving backend of chosen GGUF base models and of every adapter
fine-tuned on them (an optional backend: it needs a llama.cpp build, ``scripts/llamacpp.sh``).

``TUNEFORGE_LLAMACPP_MODELS`` names the base models (JSON, or the path of a JSON file)::

    {"smollm2-135m-instruct": {"threads": 2, "parallel": 16}}

Options per base: ``threads`` (default: ``TUNEFORGE_SERVE_THREADS``, else llama.cpp's choice), ``parallel`` (slots
decoded together by continuous batching, default 8), ``ctx_size`` (context per slot, default 2048),
``gguf`` (the weights, default: the registry's GGUF of that base), ``args`` (extra llama-server flags).

Unlike a vLLM server, tuneforge starts and supervises these servers itself (``llamacpp_servers``): a PEFT
adapter is converted to a GGUF LoRA with llama.cpp's ``convert_lora_to_gguf.py`` and the base's HF config,
and given to the server at start (``--lora`` with ``--lora-init-without-apply``); each request then selects
its adapter with llama-server's per-request ``"lora": [{"id", "scale"}]`` field. llama-server cannot load an
adapter while it runs, so a fine-tuned model it does not have yet starts a new server with the longer list;
the old one finishes the requests it has, then stops.

This module reads the configuration and converts adapters; ``Gateway.route`` decides.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tuneforge.gateway.errors import UpstreamError

log = logging.getLogger("tuneforge.gateway")

LLAMACPP = "llamacpp"
# The llama-cpp-python release whose sdist vendors the llama.cpp that scripts/llamacpp.sh builds.
LLAMACPP_VERSION = "0.3.36"
_PATH = re.compile(r"(?<![\w:/])/(?:[\w.@+-]+/)*[\w.@+-]+")


def default_home() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tuneforge" / "llamacpp" / LLAMACPP_VERSION


@dataclass(frozen=True)
class LlamaCppModel:
    """How to serve one base model with llama-server."""

    base: str
    threads: int | None = None
    parallel: int = 8
    ctx_size: int = 2048  # per slot; the KV cache holds parallel x ctx_size tokens
    gguf: str | None = None
    args: tuple[str, ...] = field(default=())


def parse_llamacpp_models(value: str | None) -> dict[str, LlamaCppModel]:
    """{base model id: how to serve it} from TUNEFORGE_LLAMACPP_MODELS (a JSON object, a list of ids, or a
    file holding either)."""
    if not value or not value.strip():
        return {}
    text = value.strip()
    if not text.startswith(("{", "[")):
        try:
            text = Path(text).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {text}: {exc.strerror}") from None
    data = json.loads(text)
    if isinstance(data, list):
        data = {str(base): {} for base in data}
    if not isinstance(data, dict):
        raise ValueError("it must be a JSON object mapping base model ids to options (or a list of ids)")
    out: dict[str, LlamaCppModel] = {}
    for base, spec in data.items():
        spec = {} if spec in (None, True) else spec
        if not isinstance(spec, dict):
            raise ValueError(f"[{base!r}] must be an object of options")
        unknown = set(spec) - {"threads", "parallel", "ctx_size", "gguf", "args"}
        if unknown:
            raise ValueError(f"[{base!r}] has unknown options: {', '.join(sorted(unknown))}")
        try:
            threads = int(spec["threads"]) if spec.get("threads") is not None else None
            parallel, ctx = int(spec.get("parallel", 8)), int(spec.get("ctx_size", 2048))
        except (TypeError, ValueError):
            raise ValueError(f"[{base!r}]: threads, parallel and ctx_size must be integers") from None
        if (threads is not None and threads < 1) or parallel < 1 or ctx < 64:
            raise ValueError(f"[{base!r}]: threads and parallel must be >= 1, ctx_size >= 64")
        args = spec.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError(f"[{base!r}]: args must be a list of strings")
        gguf = spec.get("gguf")
        if gguf is not None and not isinstance(gguf, str):
            raise ValueError(f"[{base!r}]: gguf must be a path")
        out[str(base)] = LlamaCppModel(str(base), threads, parallel, ctx, gguf, tuple(args))
    return out


def server_binary(home: Path) -> Path:
    return Path(home) / "build" / "bin" / "llama-server"


def missing_build(home: Path) -> UpstreamError:
    log.error("llama.cpp: %s is missing; run scripts/llamacpp.sh (or set TUNEFORGE_LLAMACPP_DIR)",
              server_binary(home))
    return UpstreamError("The llama.cpp backend of this model is not installed on the server (the operator "
                         "runs scripts/llamacpp.sh).", status=503, type="server_error", code="backend_unavailable")


def clean_message(text: str) -> str:
    return _PATH.sub("[path]", text)


@dataclass(frozen=True)
class LoraFile:
    """A fine-tuned model's adapter as llama-server loads it."""

    name: str  # the fine-tuned model's id
    key: str  # identity of the PEFT weights it was converted from (``adapter_key``)
    path: Path


def convert_adapter(home: Path, name: str, adapter_dir: Path, key: str, base_config_dir: str,
                    out_dir: Path, timeout: float = 600.0) -> LoraFile:
    """The GGUF LoRA of a PEFT adapter folder, converted once per weights (cached under ``out_dir`` by the
    weights' identity: a re-trained folder is converted again)."""
    target = Path(out_dir) / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".gguf")
    with _lock_for(target):  # concurrent first requests convert once
        if target.is_file():
            return LoraFile(name, key, target)
        return _convert(home, name, adapter_dir, key, base_config_dir, target, timeout)


_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(target: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(target, threading.Lock())


def _convert(home: Path, name: str, adapter_dir: Path, key: str, base_config_dir: str, target: Path,
             timeout: float) -> LoraFile:
    script = Path(home) / "src" / "convert_lora_to_gguf.py"
    if not script.is_file():
        raise missing_build(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    cmd = [sys.executable, str(script), "--base", str(base_config_dir), "--outtype", "f32",
           "--outfile", str(tmp), str(Path(adapter_dir).resolve())]
    log.info("llama.cpp: converting the adapter of %s to GGUF", name)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=script.parent)
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0 or not tmp.is_file():
        tail = (done.stderr or done.stdout)[-1500:] if done is not None else "timed out"
        log.error("llama.cpp: converting %s failed: %s", name, tail)
        tmp.unlink(missing_ok=True)
        reason = clean_message(tail.strip().splitlines()[-1] if tail.strip() else "no output")
        raise UpstreamError(f"The llama.cpp backend could not convert the fine-tuned model '{name}': {reason}",
                            status=502, type="server_error", code="adapter_load_failed")
    os.replace(tmp, target)
    return LoraFile(name, key, target)


def base_gguf(path: str) -> Path:
    """The .gguf file of a base model given as a file or a folder holding one."""
    p = Path(path).expanduser()
    if p.is_dir():
        found = sorted(p.glob("*.gguf"))
        if len(found) != 1:
            raise ValueError("the folder must hold exactly one .gguf file")
        p = found[0]
    if not p.is_file():
        raise ValueError("the GGUF file is missing")
    return p
