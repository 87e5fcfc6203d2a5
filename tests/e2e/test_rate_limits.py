"""Rate limits seen from outside: order_svc as real processes, replicas sharing the real Redis."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import token_for
from tests.support.processes import ROOT, ServiceProcess, free_port
from tests.support.redis import REDIS
from tests.support.settings import JWT_SECRET

pytestmark = pytest.mark.e2e

ORDER = {"items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 100}]}


def order_svc_env(order_db: str, amqp_url: str, **settings: str) -> dict[str, str]:
    return {
        "AMQP_URL": amqp_url,
        "ORDER_SVC_DATABASE_URL": order_db,
        "JWT_SECRET": JWT_SECRET,
        # No user_svc runs here: its JWKS is not fetched from a port someone else may be using.
        "JWKS_URL": f"http://127.0.0.1:{free_port()}/.well-known/jwks.json",
        **settings,
    }


@pytest.fixture
async def replicas(
    order_db: str, amqp_url: str, redis_key_prefix: str, tmp_path: Path
) -> AsyncIterator[list[ServiceProcess]]:
    """Two order_svc processes on one database, counting in one Redis; a route limited to 4."""
    env = order_svc_env(
        order_db,
        amqp_url,
        RATE_LIMIT_STORAGE_URL=REDIS,
        RATE_LIMIT_KEY_PREFIX=redis_key_prefix,
        RATE_LIMITS="POST /orders=4/minute",
    )
    processes = []
    for number in range(2):
        port = free_port()
        processes.append(
            ServiceProcess(
                "order_svc", {**env, "ORDER_SVC_PORT": str(port)}, port, tmp_path / f"{number}.log"
            )
        )
    try:
        # They start together, as replicas do, and migrate under an advisory lock.
        for process in processes:
            process.start()
        await asyncio.gather(*(process.wait_ready() for process in processes))
        yield processes
    finally:
        for process in processes:
            process.kill()


async def test_two_replicas_sharing_redis_enforce_one_route_limit(
    replicas: list[ServiceProcess],
) -> None:
    bearer = {"Authorization": f"Bearer {token_for(uuid.uuid4())}"}
    async with httpx.AsyncClient(headers=bearer) as http:
        answers = [await http.post(f"{replicas[n % 2].url}/orders", json=ORDER) for n in range(6)]
        listed = await http.get(f"{replicas[0].url}/orders")

    assert [a.status_code for a in answers] == [202, 202, 202, 202, 429, 429]
    assert [re.findall(r";r=(\d+)", a.headers["ratelimit"]) for a in answers] == [
        ["3"],
        ["2"],
        ["1"],
        ["0"],
        ["0"],
        ["0"],
    ]
    assert int(answers[5].headers["retry-after"]) >= 1
    assert answers[5].headers["content-type"] == "application/problem+json"
    assert len(listed.json()["items"]) == 4


@pytest.mark.parametrize(
    ("rate_limits", "named"),
    [
        ("POST /orders=lots", "POST /orders=lots"),
        ("PUSH /orders=1/second", "unknown method 'PUSH'"),
        ("DELETE /orders=1/second", "no route DELETE /orders"),
        ("GET /orders/{id}=1/second", "no route GET /orders/{id}"),
    ],
    ids=["malformed limit", "unknown method", "unknown route", "path not as in the document"],
)
def test_a_service_refuses_to_start_with_rate_limits_it_cannot_apply(
    order_db: str, amqp_url: str, rate_limits: str, named: str
) -> None:
    env = order_svc_env(
        order_db, amqp_url, RATE_LIMITS=rate_limits, ORDER_SVC_PORT=str(free_port())
    )

    started = subprocess.run(
        [sys.executable, "-m", "order_svc"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert started.returncode != 0
    assert "RATE_LIMITS" in started.stderr
    assert named in started.stderr


async def started_api(
    order_db: str, amqp_url: str, tmp_path: Path, **settings: str
) -> ServiceProcess:
    """One order_svc `api` whose anonymous reads are limited to 2 a minute per client."""
    port = free_port()
    env = order_svc_env(
        order_db, amqp_url, ORDER_SVC_PORT=str(port), RATE_LIMIT_READS="2/minute", **settings
    )
    process = ServiceProcess("order_svc", env, port, tmp_path / "api.log")
    process.start("api")
    await process.wait_ready()
    return process


async def anonymous_reads(process: ServiceProcess, forwarded_for: list[str]) -> list[int]:
    async with httpx.AsyncClient() as http:
        answers = [
            await http.get(f"{process.url}/orders", headers={"X-Forwarded-For": client})
            for client in forwarded_for
        ]
    return [a.status_code for a in answers]


async def test_a_client_cannot_escape_its_limit_by_naming_another_address(
    order_db: str, amqp_url: str, tmp_path: Path
) -> None:
    process = await started_api(order_db, amqp_url, tmp_path, FORWARDED_ALLOW_IPS="10.9.9.9")
    try:
        statuses = await anonymous_reads(process, ["198.51.100.1", "198.51.100.2", "198.51.100.3"])
    finally:
        process.kill()

    assert statuses == [401, 401, 429]


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    order_db: str, amqp_url: str, tmp_path: Path
) -> None:
    process = await started_api(order_db, amqp_url, tmp_path, FORWARDED_ALLOW_IPS="127.0.0.1")
    try:
        statuses = await anonymous_reads(
            process, ["198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2"]
        )
    finally:
        process.kill()

    assert statuses == [401, 401, 429, 401]
