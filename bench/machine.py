"""What the numbers were measured on: a figure without its machine cannot be compared."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import asyncpg

from bench.infra import POSTGRES, rabbitmqctl
from shared.persistence.database import dsn


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


async def describe() -> dict[str, Any]:
    connection = await asyncpg.connect(dsn(f"{POSTGRES}/postgres"))
    try:
        postgres = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    try:
        rabbitmq = rabbitmqctl("version").strip()
    except Exception as error:
        rabbitmq = f"unknown ({error!r})"
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "postgresql": postgres,
        "rabbitmq": rabbitmq,
        # Anything else running skews every figure: this shows whether the machine was quiet.
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
