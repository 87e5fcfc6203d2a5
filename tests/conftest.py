"""Shared fixtures: every test gets its own PostgreSQL databases and RabbitMQ vhost.

Nothing here fakes a server: integration and end-to-end tests run against the real local
PostgreSQL and RabbitMQ (`make test` makes sure both are up). Databases and vhosts carry a random
suffix and are dropped afterwards, so runs never collide, not even concurrent ones.

Each service's schema is migrated once per session, into a template database; a test's database
is a copy of it (`CREATE DATABASE .. TEMPLATE`), which costs a file copy instead of a migration.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import asyncpg
import pytest

from shared.persistence.database import (
    Database,
    drop_database,
    dsn,
    ensure_database,
    with_database,
)
from shared.persistence.migrations import migrate

POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
SERVICES = ("user_svc", "order_svc")
RUN = uuid.uuid4().hex[:8]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost() -> tuple[str, str]:
    """A fresh vhost the guest user may use; returns (name, amqp url)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return name, f"{AMQP}/{quote(name, safe='')}"


def delete_vhost(name: str) -> None:
    _rabbitmqctl("delete_vhost", name)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    name, url = create_vhost()
    yield url
    delete_vhost(name)


def template_url(package: str) -> str:
    return f"{POSTGRES}/test_template_{package}_{RUN}"


@pytest.fixture(scope="session")
async def migrated_templates() -> AsyncIterator[None]:
    """Each service's schema at head, once per session, for tests' databases to copy."""
    for package in SERVICES:
        await ensure_database(template_url(package))
        await migrate(package, template_url(package))
    yield
    for package in SERVICES:
        await drop_database(template_url(package))


async def new_database(package: str) -> str:
    """A new database for `package` (user_svc or order_svc) with its schema at head."""
    name = f"test_{package}_{uuid.uuid4().hex[:12]}"
    template = template_url(package).rsplit("/", 1)[1]
    admin = await asyncpg.connect(dsn(with_database(POSTGRES + "/x", "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return f"{POSTGRES}/{name}"


@pytest.fixture
async def user_db(migrated_templates: None) -> AsyncIterator[str]:
    url = await new_database("user_svc")
    yield url
    await drop_database(url)


@pytest.fixture
async def order_db(migrated_templates: None) -> AsyncIterator[str]:
    url = await new_database("order_svc")
    yield url
    await drop_database(url)


@pytest.fixture
async def user_database(user_db: str) -> AsyncIterator[Database]:
    database = Database(user_db, pool_size=4)
    yield database
    await database.close()


@pytest.fixture
async def order_database(order_db: str) -> AsyncIterator[Database]:
    database = Database(order_db, pool_size=4)
    yield database
    await database.close()
