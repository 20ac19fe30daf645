"""A real single-node Ray head on loopback for the Ray-backend tests, stopped without touching any other Ray."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tuneforge.testing import free_port


class RayHead:
    def __init__(self, num_cpus: int = 1):
        self.dashboard_port = free_port()
        # short: Ray's unix socket paths live under it and must stay under 108 bytes
        self.temp_dir = tempfile.mkdtemp(prefix="tfray")
        ray = str(Path(sys.executable).with_name("ray"))
        cmd = [ray, "start", "--head", "--block", "--port=0", "--node-ip-address=127.0.0.1",
               "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
               f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
               f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=true",
               f"--temp-dir={self.temp_dir}", "--disable-usage-stats"]
        self.log = open(Path(self.temp_dir) / "ray-start.log", "wb")
        # its own process group: stopping it (SIGTERM, then SIGKILL to the group) reaches only this head
        # no drain wait on SIGTERM: the node's processes are stopped at once
        env = dict(os.environ, RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env)
        self.started_s: float | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def wait_ready(self, timeout: float = 120) -> RayHead:
        from ray.job_submission import JobSubmissionClient

        t0, deadline = time.time(), time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited {self.proc.returncode}: {self.output()[-2000:]}")
            try:
                if httpx.get(self.address + "/api/version", timeout=2).status_code == 200:
                    # the job agent comes up after the dashboard: ready once a trivial job has run
                    client = JobSubmissionClient(self.address)
                    warmup = client.submit_job(entrypoint="true")
                    while client.get_job_status(warmup).value not in ("SUCCEEDED", "FAILED", "STOPPED"):
                        time.sleep(0.2)
                    self.started_s = time.time() - t0
                    return self
            except Exception:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the Ray head did not start within {timeout} s: {self.output()[-2000:]}")

    def output(self) -> str:
        return (Path(self.temp_dir) / "ray-start.log").read_text(errors="replace")

    def _stragglers(self) -> list[int]:
        """Processes of this head outside its group (Ray workers have their own): they name its temp dir."""
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                try:
                    if self.temp_dir.encode() in (proc / "cmdline").read_bytes():
                        pids.append(int(proc.name))
                except OSError:
                    pass
        return pids

    def stop(self) -> None:
        pgid = self.proc.pid
        try:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        for target in ([pgid], self._stragglers()):
            for pid in target:
                try:
                    (os.killpg if pid == pgid else os.kill)(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
