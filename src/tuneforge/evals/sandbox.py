"""The ``python`` grader's sandbox: the user's ``grade(sample, item)`` runs in a child interpreter.

Isolation, from the kernel rather than from Python (user code can undo anything done in Python):
- no network: the child enters fresh user + network namespaces (``unshare``), where only a downed
  loopback exists, so connecting anywhere fails; where namespaces are unavailable the grader refuses
  to run rather than run unconfined;
- memory: ``RLIMIT_AS``; CPU: ``RLIMIT_CPU`` plus a wall-clock timeout that kills the process group;
- no files beyond its own temporary directory as working directory, an empty environment, isolated
  mode (``-I``: no user site-packages, no PYTHON* variables), output size capped.
The operator must enable it (``TUNEFORGE_EVALS_PYTHON_GRADER=true``); it is off by default.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MAX_OUTPUT = 1 << 20

# Runs in the child: reads {"source", "sample", "item"} on stdin, prints {"score": float} or {"error": str}.
_RUNNER = r"""
import json, sys, traceback
payload = json.loads(sys.stdin.read())
namespace = {"__name__": "grader"}
try:
    exec(compile(payload["source"], "<grader>", "exec"), namespace)
    grade = namespace.get("grade")
    if not callable(grade):
        raise NameError("the source must define grade(sample, item)")
    score = grade(payload["sample"], payload["item"])
    out = {"score": float(score)}
except BaseException as exc:
    lines = traceback.format_exception_only(type(exc), exc)
    out = {"error": "".join(lines).strip()[-2000:]}
sys.stdout.write("\n" + json.dumps(out))
"""


@dataclass
class SandboxResult:
    score: float | None
    error: str | None = None  # the grader's own exception (a runtime error)
    server_error: str | None = None  # the sandbox failed: timeout, memory, no isolation available


def _confine(memory_bytes: int, cpu_s: int) -> None:
    """preexec_fn: in the child after fork, before exec."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0 and libc.unshare(_CLONE_NEWNET) != 0:
        os._exit(97)  # no network isolation: refuse (reported as a server error by the parent)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))


def run_python_grader(source: str, sample: dict, item: dict, *, timeout_s: float, memory_mb: int) -> SandboxResult:
    payload = json.dumps({"source": source, "sample": sample, "item": item})
    with tempfile.TemporaryDirectory(prefix="tuneforge-grader-") as workdir:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=workdir, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            preexec_fn=lambda: _confine(memory_mb << 20, max(1, int(timeout_s) + 1)))
        try:
            out, err = proc.communicate(payload.encode(), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return SandboxResult(None, server_error=f"timeout: the grader ran longer than {timeout_s:g} s")
    if proc.returncode == 97:
        return SandboxResult(None, server_error="sandbox unavailable: this host does not allow network "
                                                "namespaces (unshare), so python graders cannot run isolated")
    if proc.returncode in (-signal.SIGKILL, -signal.SIGXCPU):
        return SandboxResult(None, server_error="resource limit: the grader was killed (CPU time)")
    text = out[-_MAX_OUTPUT:].decode("utf-8", "replace").rstrip().rsplit("\n", 1)[-1]
    try:
        result = json.loads(text)
    except ValueError:
        tail = err[-500:].decode("utf-8", "replace").strip()
        if "MemoryError" in tail:
            return SandboxResult(None, error="MemoryError: the grader exceeded its memory limit")
        return SandboxResult(None, server_error=f"the grader process exited with {proc.returncode}: {tail}")
    if "error" in result:
        return SandboxResult(None, error=result["error"])
    return SandboxResult(float(result["score"]))
