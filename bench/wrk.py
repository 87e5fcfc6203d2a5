"""HTTP load with wrk (a C load generator): the same settings for the baseline and ours.

A Python client would saturate before a uvicorn worker does; wrk does not. Any non-2xx answer
(an expired token, a rate limit) makes the run fail rather than count as throughput.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

SCRIPT = Path(__file__).with_name("http_get.lua")
INSTALL_HINT = "apt-get install -y wrk  (as root; or `make bench`, which installs it)"


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(f"error: the HTTP benchmarks need wrk; run: {INSTALL_HINT}")
    return path


async def requests_per_second(
    url: str, *, token: str, seconds: float, connections: int, threads: int
) -> float:
    process = await asyncio.create_subprocess_exec(
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(SCRIPT),
        url,
        env={**os.environ, "BENCH_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    text = out.decode()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()}{text}")
    return parse(text)


def parse(output: str) -> float:
    """Requests per second from wrk's report; raise if any answer was not a success."""
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if bad:
        raise RuntimeError(f"{bad.group(1)} non-2xx answers under load:\n{output}")
    errors = re.search(r"Socket errors: (.*)", output)
    if errors and re.search(r"(connect|read|write|timeout) [1-9]", errors.group(1)):
        raise RuntimeError(f"socket errors under load:\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(found.group(1))
