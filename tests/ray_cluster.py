"""A real Ray cluster on this machine for tests and benchmarks: `ray start --head
--block` in a temp folder, CPU only, with its Ray Client server on a free port.

It is stopped by ending the `ray start --block` process (which ends the processes it
started), and then every process that was started under it and is still there is
ended by its id: nothing is left to other tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRay:
    def __init__(self, cpus: int = 4, env: dict | None = None):
        self.cpus = cpus
        self.env = env or {}
        self.dir = Path(tempfile.mkdtemp(prefix="lofid-ray-", dir="/tmp"))
        self.gcs_port = free_port()
        self.client_port = free_port()
        self.proc: subprocess.Popen | None = None
        self._seen: set[int] = set()

    @property
    def address(self) -> str:
        """The Ray Client address (what a laptop's lofid uses)."""
        return f"ray://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 120) -> float:
        """Start the cluster; the seconds it took until the client port answers."""
        t0 = time.monotonic()
        env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1",
                   RAY_USAGE_STATS_ENABLED="0")
        env.update(self.env)
        log = open(self.dir / "ray-start.log", "ab")
        self.proc = subprocess.Popen(
            [RAY, "start", "--head", "--block", f"--num-cpus={self.cpus}", "--num-gpus=0",
             f"--port={self.gcs_port}", f"--ray-client-server-port={self.client_port}",
             f"--temp-dir={self.dir}", "--include-dashboard=false", "--disable-usage-stats",
             "--node-ip-address=127.0.0.1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ray start ended:\n"
                                   + (self.dir / "ray-start.log").read_text(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", self.client_port), timeout=1).close()
                return time.monotonic() - t0
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ray did not start within {timeout} s")

    def _descendants(self) -> set[int]:
        import psutil
        try:
            return {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def stop(self, timeout: float = 60, graceful: bool = True) -> None:
        """Stop the cluster and every process it started: as `ray stop` would (SIGTERM,
        each part shutting down in turn), or, not `graceful`, at once (SIGKILL to all
        of them, as when its machine goes away; what the tests' clean-up uses)."""
        import psutil
        if self.proc is None:
            return
        started = self._descendants() | {self.proc.pid}
        if not graceful:
            for pid in started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 10
        for pid in started:
            try:
                p = psutil.Process(pid)
                p.wait(max(0.1, deadline - time.monotonic()))
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                try:
                    p.kill()
                    p.wait(5)
                except psutil.NoSuchProcess:
                    pass
        self.proc = None

    def remove(self) -> None:
        self.stop(graceful=False)
        shutil.rmtree(self.dir, ignore_errors=True)
