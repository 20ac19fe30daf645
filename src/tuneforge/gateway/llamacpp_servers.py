"""The llama-server processes tuneforge runs for its llama.cpp-served base models (``tuneforge.gateway.llamacpp``):
started on first use, restarted when one dies, replaced (new process first, then the old one drained) when a
fine-tuned model it lacks is asked for."""

from __future__ import annotations

import logging
import secrets
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tuneforge.gateway.errors import UpstreamError
from tuneforge.gateway.llamacpp import LLAMACPP, LlamaCppModel, LoraFile, missing_build, server_binary
from tuneforge.gateway.upstreams import Upstream

log = logging.getLogger("tuneforge.gateway")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """One llama-server on loopback, with the adapters it was started with (index = its LoRA id)."""

    base: str
    proc: subprocess.Popen
    port: int
    upstream: Upstream
    loras: tuple[LoraFile, ...]
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def lora_id(self, name: str, key: str) -> int | None:
        return next((i for i, f in enumerate(self.loras) if f.name == name and f.key == key), None)

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LlamaCppServers:
    """One supervised llama-server per configured base model. ``ensure`` is blocking (it may start a
    process and wait for it): call it from a worker thread."""

    def __init__(self, models: dict[str, LlamaCppModel], *, home: Path, log_dir: Path, default_threads: int | None,
                 timeout: float = 600.0, start_timeout: float = 180.0, drain_s: float = 120.0):
        self.models, self.home, self.log_dir = models, Path(home), Path(log_dir)
        self.default_threads, self.timeout = default_threads, timeout
        self.start_timeout, self.drain_s = start_timeout, drain_s
        self._running: dict[str, ServerProcess] = {}
        self._forgotten: dict[str, set[str]] = {}  # base -> deleted fine-tuned models, dropped at the next start
        self._locks = {base: threading.Lock() for base in models}
        self._draining: list[ServerProcess] = []
        self._guard = threading.Lock()
        self._closed = False
        self.starts = 0  # processes started (restarts included), for tests and logs

    def __contains__(self, base: object) -> bool:
        return base in self.models

    def __bool__(self) -> bool:
        return bool(self.models)

    def running(self, base: str) -> ServerProcess | None:
        return self._running.get(base)

    def ensure(self, base: str, gguf: Path, lora: LoraFile | None = None) -> tuple[ServerProcess, int | None]:
        """The live server of ``base`` that has ``lora`` (started or replaced if needed), and its LoRA id."""
        with self._locks[base]:
            if self._closed:
                raise UpstreamError.backend_unavailable(f"llama.cpp server for {base}", RuntimeError("closed"))
            current = self._running.get(base)
            if current is not None and not current.alive():
                log.error("llama.cpp: the server for %s exited with %s; starting it again (log: %s)", base,
                          current.proc.returncode, current.log_path)
                self._running.pop(base, None)
            elif current is not None and (lora is None or current.lora_id(lora.name, lora.key) is not None):
                return current, (None if lora is None else current.lora_id(lora.name, lora.key))
            loras = [f for f in (current.loras if current is not None else ())
                     if f.name not in self._forgotten.get(base, set()) and (lora is None or f.name != lora.name)]
            if lora is not None:
                loras.append(lora)
            fresh = self._start(base, gguf, tuple(loras))
            self._forgotten.pop(base, None)
            self._running[base] = fresh
            if current is not None and current.alive():
                self._drain(current)
            return fresh, (None if lora is None else fresh.lora_id(lora.name, lora.key))

    def forget(self, base: str, name: str) -> None:
        """A deleted fine-tuned model: tuneforge no longer routes to it; the next start leaves it out."""
        if base in self.models:
            with self._guard:
                self._forgotten.setdefault(base, set()).add(name)

    def _start(self, base: str, gguf: Path, loras: tuple[LoraFile, ...]) -> ServerProcess:
        binary = server_binary(self.home)
        if not binary.is_file():
            raise missing_build(self.home)
        cfg = self.models[base]
        threads = cfg.threads or self.default_threads
        key = secrets.token_urlsafe(24)  # tuneforge's ownership checks must not be bypassable on loopback
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"llamacpp-{base}.log"
        last: Exception | None = None
        for _attempt in range(3):  # a port taken between choosing and binding: try another
            port = _free_port()
            args = [str(binary), "--model", str(gguf), "--alias", base, "--host", "127.0.0.1", "--port", str(port),
                    "--parallel", str(cfg.parallel), "--ctx-size", str(cfg.ctx_size * cfg.parallel),
                    "--no-webui", "--api-key", key, "--no-slots"]
            if threads:
                args += ["--threads", str(threads)]
            for f in loras:
                args += ["--lora", str(f.path)]
            if loras:
                args.append("--lora-init-without-apply")
            args += list(cfg.args)
            with log_path.open("ab") as out:
                out.write(f"\n==== tuneforge starts llama-server for {base} on port {port} with {len(loras)} "
                          f"adapter(s)\n".encode())
                out.flush()
                proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            upstream = Upstream(name=f"llama.cpp server for {base}", patterns=(base,),
                                base_url=f"http://127.0.0.1:{port}/v1", api_key=key, list_models=False,
                                timeout=self.timeout, backend=LLAMACPP)
            server = ServerProcess(base, proc, port, upstream, loras, log_path)
            started = time.monotonic()
            try:
                self._wait_ready(server)
            except UpstreamError as exc:
                server.stop(grace=2)
                last = exc
                continue
            self.starts += 1
            log.info("llama.cpp: server for %s ready on port %s in %.1f s (%d adapters, %s threads, %d slots)",
                     base, port, time.monotonic() - started, len(loras), threads or "all", cfg.parallel)
            return server
        assert last is not None
        raise last

    def _wait_ready(self, server: ServerProcess) -> None:
        deadline = time.monotonic() + self.start_timeout
        url = f"http://127.0.0.1:{server.port}/health"
        while time.monotonic() < deadline:
            if not server.alive():
                log.error("llama.cpp: the server for %s exited with %s while starting; see %s", server.base,
                          server.proc.returncode, server.log_path)
                raise UpstreamError(f"The llama.cpp server for {server.base} failed to start.", status=503,
                                    type="server_error", code="backend_unavailable")
            try:
                if httpx.get(url, timeout=2).status_code == 200:  # 503 while the model loads
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise UpstreamError(f"The llama.cpp server for {server.base} did not start in {self.start_timeout:.0f} s.",
                            status=503, type="server_error", code="backend_unavailable")

    def _drain(self, old: ServerProcess) -> None:
        """Requests already sent to the replaced server finish there; it stops after ``drain_s``."""
        with self._guard:
            self._draining.append(old)

        def stop():
            old.stop()
            with self._guard:
                if old in self._draining:
                    self._draining.remove(old)

        timer = threading.Timer(self.drain_s, stop)
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        with self._guard:
            self._closed = True
            servers = [*self._running.values(), *self._draining]
            self._running.clear()
            self._draining.clear()
        for server in servers:
            server.stop()
