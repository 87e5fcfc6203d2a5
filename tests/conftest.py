"""Shared fixtures: every test gets its own PostgreSQL databases and RabbitMQ vhost.

Nothing here fakes a server: integration and end-to-end tests run against the real local
PostgreSQL and RabbitMQ (`make test` makes sure both are up). Databases and vhosts carry a random
suffix and are dropped afterwards, so runs never collide, not even concurrent ones.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import pytest

from shared.db import drop_database, ensure_database, migrate
from tests.support.names import unique_suffix

pytest_plugins = ["tests.support.servers.plugin", "tests.support.machine"]

POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost() -> tuple[str, str]:
    """A fresh vhost the guest user may use; returns (name, amqp url)."""
    name = f"test-{unique_suffix()}"
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


async def new_database(package: str) -> str:
    """A new, migrated database for `package` (user_svc or order_svc)."""
    url = f"{POSTGRES}/test_{package}_{unique_suffix()}"
    await ensure_database(url)
    await migrate(package, url)
    return url


@pytest.fixture
async def user_db() -> AsyncIterator[str]:
    url = await new_database("user_svc")
    yield url
    await drop_database(url)


@pytest.fixture
async def order_db() -> AsyncIterator[str]:
    url = await new_database("order_svc")
    yield url
    await drop_database(url)
