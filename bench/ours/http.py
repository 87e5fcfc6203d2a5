"""`http_get_rps`, `raw_http_get_rps` and `fastapi_http_get_rps`: wrk against `GET /orders/{id}`
of order_svc and of the two baselines, with the same token, connections, threads and duration.
"""

from __future__ import annotations

from pathlib import Path

from bench.infra import Resources
from bench.settings import BenchSettings
from bench.stack import Service, free_port, spawn
from bench.wrk import requests_per_second


def start_baseline(module: str, resources: Resources, database_url: str, log_dir: Path) -> Service:
    """A baseline endpoint (`bench.baselines.raw_http` or `.fastapi_http`) as its own uvicorn
    process, reading order_svc's database."""
    port = free_port()
    return spawn(resources, module, {}, port, log_dir, args=(database_url, str(port)))


async def measure(
    base_url: str, order_id: str, token: str, settings: BenchSettings, *, seconds: float
) -> float:
    return await requests_per_second(
        f"{base_url}/orders/{order_id}",
        token=token,
        seconds=seconds,
        connections=settings.http_connections,
        threads=settings.http_threads,
    )
