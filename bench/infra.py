"""The bench's own databases, vhosts and processes, and removing every one of them afterwards.

Everything is created under a `bench_` (database) or `bench-` (vhost) name with a random suffix,
registered here the moment it exists, and removed by `Resources.release` even when a measurement
fails half-way: a benchmark must never leave load generators, services or data behind on the
servers it shares with everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

from shared.persistence.database import drop_database, ensure_database
from shared.persistence.migrations import migrate

log = logging.getLogger(__name__)

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout


@dataclass
class Resources:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    databases: list[str] = field(default_factory=list)
    vhosts: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    async def database(self, label: str, *, migrated_for: str | None = None) -> str:
        """A new database (migrated like `migrated_for`'s, if given); returns its URL."""
        url = f"{POSTGRES}/bench_{label}_{self.run_id}"
        self.databases.append(url)
        await ensure_database(url)
        if migrated_for is not None:
            await migrate(migrated_for, url)
        return url

    def vhost(self, label: str) -> str:
        """A new vhost the guest user may use; returns its AMQP URL."""
        name = f"bench-{label}-{self.run_id}"
        self.vhosts.append(name)
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return f"{AMQP}/{quote(name, safe='')}"

    def track(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Stop one of our processes before the end of the run."""
        self.processes.remove(process)
        stop_process(process)

    async def release(self) -> None:
        """Stop our processes, drop our databases, delete our vhosts; report, never raise."""
        for process in self.processes:
            stop_process(process)
        for url in self.databases:
            await _drop_with_retries(url)
        for name in self.vhosts:
            try:
                rabbitmqctl("delete_vhost", name)
            except subprocess.SubprocessError as error:
                log.warning("could not delete vhost %s: %r", name, error)


async def _drop_with_retries(url: str, attempts: int = 10) -> None:
    """Drop `url`'s database, waiting out a server restart (another suite may be restarting it)."""
    for attempt in range(1, attempts + 1):
        try:
            await drop_database(url)
        except Exception as error:
            if attempt == attempts:
                log.warning("could not drop %s: %r", url.rsplit("/", 1)[1], error)
                return
            await asyncio.sleep(2)
        else:
            return


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM (a graceful shutdown, as an orchestrator does), SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=timeout)
