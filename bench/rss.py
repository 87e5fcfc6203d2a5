"""Resident memory of the service processes, sampled through the run (no psutil: /proc).

The kernel's high-water mark (`VmHWM`) catches peaks between samples; the periodic `VmRSS`
samples show how memory moved. Both are in the results.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path


def status_kib(pid: int, field: str) -> int | None:
    """A `kB` field of /proc/<pid>/status, or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


class RssSampler:
    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self._pids = pids
        self._interval = interval
        self.peak_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        for name, pid in self._pids.items():
            for field in ("VmRSS", "VmHWM"):
                kib = status_kib(pid, field)
                if kib is not None:
                    self.peak_mb[name] = max(self.peak_mb[name], kib / 1024)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rss-sampler")

    async def stop(self) -> None:
        self.sample()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def max_mb(self) -> float:
        return max(self.peak_mb.values(), default=0.0)
