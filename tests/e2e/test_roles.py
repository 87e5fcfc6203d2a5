"""The roles as real processes (`python -m <service> <role>`): what each runs, serves and needs.

All tests share one pair of databases and one vhost; each starts only the processes it needs
and stops them when it ends. An `api` is always given a broker address where nothing listens:
it must never need one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import bindparam, select

from order_svc import models as order_models
from shared.persistence.database import Database, drop_database, dsn
from shared.persistence.migrations import alembic_config
from shared.persistence.statements import Statement
from tests.e2e.harness import CREDIT_LIMIT, token_for
from tests.support.databases import POSTGRES, new_database
from tests.support.processes import ROOT, ServiceProcess, free_port
from tests.support.proxy import TcpProxy
from tests.support.settings import JWT_SECRET, NO_RATE_LIMITS
from tests.support.vhosts import VhostSupply
from tests.support.waiting import eventually
from user_svc import handlers as user_handlers
from user_svc.passwords import Passwords
from user_svc.uow import unit_of_work as user_unit_of_work

pytestmark = pytest.mark.e2e

# Nothing listens there (TCP port 9, discard): an api must be ready without a broker.
NO_BROKER = "amqp://guest:guest@127.0.0.1:9/"
SIGTERM_EXIT_SECONDS = 10.0


@dataclass
class Roles:
    """Processes of both services in any role, on one pair of databases and one vhost."""

    amqp_url: str
    databases: dict[str, str]
    log_dir: Path
    running: list[ServiceProcess] = field(default_factory=list)

    def process(self, service: str, role: str, **env: str) -> ServiceProcess:
        """`service` in `role`, not started; a worker or relay serves on an `OPS_PORT` of its
        own, away from the service port."""
        prefix = service.upper()
        service_port, ops_port = free_port(), free_port()
        settings = {
            "AMQP_URL": NO_BROKER if role == "api" else self.amqp_url,
            "RELAY_POLL_SECONDS": "0.5",
            "JWT_SECRET": JWT_SECRET,
            **NO_RATE_LIMITS,
            "USER_DEFAULT_CREDIT_LIMIT": str(CREDIT_LIMIT),
            f"{prefix}_DATABASE_URL": self.databases[service],
            f"{prefix}_PORT": str(service_port),
            "OPS_PORT": str(ops_port),
            **env,
        }
        port = ops_port if role in ("worker", "relay") else service_port
        log_path = self.log_dir / f"{service}-{role}-{port}.log"
        process = ServiceProcess(service, settings, port, log_path, role=role)
        self.running.append(process)
        return process

    async def start(self, service: str, role: str, **env: str) -> ServiceProcess:
        process = self.process(service, role, **env)
        process.start()
        await process.wait_ready()
        return process

    def kill_all(self) -> None:
        for process in self.running:
            process.kill()
        self.running.clear()


@pytest.fixture(scope="module")
async def databases(migrated_templates: None) -> AsyncIterator[dict[str, str]]:
    """Every service's database, migrated (the split roles do not migrate on start)."""
    migrated = {
        service: await new_database(service)
        for service in ("user_svc", "order_svc", "inventory_svc")
    }
    yield migrated
    for url in migrated.values():
        await drop_database(url)


@pytest.fixture(scope="module")
def vhost(vhosts: VhostSupply) -> Iterator[str]:
    name, url = vhosts.take()
    yield url
    vhosts.discard(name)


@pytest.fixture
def roles(databases: dict[str, str], vhost: str, tmp_path: Path) -> Iterator[Roles]:
    started = Roles(amqp_url=vhost, databases=databases, log_dir=tmp_path)
    yield started
    started.kill_all()


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(url)


async def holds(probe: Callable[[], Awaitable[bool]], *, seconds: float, what: str) -> None:
    """Check `probe` again and again for `seconds`; fail the first time it is false."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        assert await probe(), f"{what} stopped holding"
        await asyncio.sleep(0.1)


async def register_user(user_db: str) -> uuid.UUID:
    """A user of user_svc, written through its own handler (no user_svc api needed)."""
    database = Database(user_db, pool_size=1)
    try:
        user = await user_handlers.register_user(
            user_handlers.RegisterUser(
                email=f"roles-{uuid.uuid4().hex[:10]}@example.com",
                name="Roles",
                password="correct horse",
                credit_limit=CREDIT_LIMIT,
            ),
            user_unit_of_work(database),
            Passwords(),
        )
    finally:
        await database.close()
    return user.id


@pytest.fixture
async def split_order_database(databases: dict[str, str]) -> AsyncIterator[Database]:
    database = Database(databases["order_svc"], pool_size=1)
    yield database
    await database.close()


_PUBLISHED_AT = Statement(
    select(order_models.outbox.c.published_at).where(
        order_models.outbox.c.subject == bindparam("subject")
    )
)


async def published_at(database: Database, order_id: str) -> list[datetime | None]:
    """When each outbox row of the order was published (None: not yet)."""
    async with database.connection() as connection:
        rows = await _PUBLISHED_AT.fetch(connection, subject=order_id)
    return [row["published_at"] for row in rows]


async def test_migrate_creates_the_database_brings_it_to_head_and_exits_0() -> None:
    url = f"{POSTGRES}/e2e_migrate_{uuid.uuid4().hex[:12]}"
    try:
        finished = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "order_svc", "migrate"],
            env={**os.environ, "ORDER_SVC_DATABASE_URL": url},
            cwd=ROOT,
            capture_output=True,
            timeout=60,
        )
        assert finished.returncode == 0, finished.stderr.decode()
        connection = await asyncpg.connect(dsn(url))
        try:
            version = await connection.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await connection.close()
        head = ScriptDirectory.from_config(alembic_config("order_svc", url)).get_current_head()
        assert version == head
    finally:
        await drop_database(url)


async def test_orders_an_api_alone_takes_stay_pending_until_relays_and_workers_run(
    roles: Roles, split_order_database: Database
) -> None:
    api = await roles.start("order_svc", "api")
    user_id = await register_user(roles.databases["user_svc"])
    async with httpx.AsyncClient(
        base_url=api.url, headers={"Authorization": f"Bearer {token_for(user_id)}"}
    ) as client:
        placed = await client.post(
            "/orders", json={"items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 700}]}
        )
        assert placed.status_code == 202, placed.text
        order_id = placed.json()["id"]

        async def status() -> str:
            return str((await client.get(f"/orders/{order_id}")).json()["status"])

        async def pending_and_unpublished() -> bool:
            unpublished = await published_at(split_order_database, order_id)
            return await status() == "pending" and unpublished == [None]

        await holds(pending_and_unpublished, seconds=1.5, what="pending, event unpublished")

        for process in (
            roles.process("order_svc", "relay"),
            roles.process("user_svc", "worker"),
            roles.process("user_svc", "relay"),
            roles.process("inventory_svc", "worker"),
            roles.process("inventory_svc", "relay"),
            roles.process("order_svc", "worker"),
        ):
            process.start()

        async def confirmed() -> bool:
            return await status() == "confirmed"

        await eventually(confirmed, timeout=60, what=f"order {order_id} confirmed")

    async def all_published() -> bool:
        # The confirmation's own event is committed with it and published a moment later.
        return None not in await published_at(split_order_database, order_id)

    await eventually(all_published, timeout=30, what=f"order {order_id}'s events published")


@pytest.mark.parametrize(
    ("role", "checks"),
    [
        ("api", {"database": True, "token_keys": True}),
        ("worker", {"database": True, "broker": True, "consumer": True}),
        ("relay", {"database": True, "broker": True}),
    ],
)
async def test_each_role_answers_health_readiness_and_metrics_on_its_port(
    roles: Roles, role: str, checks: dict[str, bool]
) -> None:
    """An api on the service port (ready without any broker), a worker or relay on OPS_PORT."""
    process = await roles.start("order_svc", role)

    health, ready, metrics = [
        await get(f"{process.url}{path}") for path in ("/healthz", "/readyz", "/metrics")
    ]

    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["checks"] == checks
    assert metrics.status_code == 200
    assert "http_requests_total" in metrics.text


async def test_a_worker_whose_broker_is_unreachable_is_not_ready(roles: Roles) -> None:
    amqp = urlsplit(roles.amqp_url)
    broker = TcpProxy(amqp.port or 5672, upstream_host=amqp.hostname or "127.0.0.1")
    await broker.start()
    try:
        credentials = amqp.netloc.rpartition("@")[0]
        through_proxy = amqp._replace(netloc=f"{credentials}@127.0.0.1:{broker.port}")
        worker = await roles.start("order_svc", "worker", AMQP_URL=urlunsplit(through_proxy))
        await broker.close()

        async def refused() -> httpx.Response | None:
            # The consumer may be reported down a moment before the connection is.
            response = await get(f"{worker.url}/readyz")
            broker_down = response.status_code == 503 and not response.json()["checks"]["broker"]
            return response if broker_down else None

        response = await eventually(refused, what="worker /readyz 503 with the broker down")
    finally:
        await broker.close()
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["checks"]["database"] is True


@pytest.mark.parametrize("role", ["worker", "relay"])
async def test_sigterm_stops_a_worker_or_a_relay_promptly_after_a_complete_shutdown(
    roles: Roles, role: str
) -> None:
    process = await roles.start("order_svc", role)
    assert process.process is not None

    process.process.send_signal(signal.SIGTERM)
    returncode = await asyncio.to_thread(process.process.wait, SIGTERM_EXIT_SECONDS)

    # As every role: uvicorn re-raises the signal once its shutdown is complete (exit 143).
    assert returncode == -signal.SIGTERM
    assert "Application shutdown complete" in process.log_path.read_text()
