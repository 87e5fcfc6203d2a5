"""A service run as a real process, started exactly as in production (`python -m user_svc
[role]`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    """One process of a service in one role; `port` is where it serves HTTP (the API port for
    `all` and `api`, `OPS_PORT` for `worker` and `relay`)."""

    module: str
    env: dict[str, str]
    port: int
    log_path: Path
    role: str = "all"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, role: str | None = None, **overrides: str) -> None:
        """Start it in its role, or in `role` this time."""
        env = {**os.environ, **self.env, **overrides}
        command = [sys.executable, "-m", self.module, role or self.role]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
        log.close()

    async def wait_ready(self, timeout: float = 90) -> None:
        """Three services importing at once on a busy two-core machine can take over a minute."""

        async def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited: see {self.log_path}")
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=timeout, what=f"{self.module} ready")

    def stop(self) -> None:
        """Graceful stop (SIGTERM), as an orchestrator would do it."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """Sudden death (SIGKILL): no shutdown code runs."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
