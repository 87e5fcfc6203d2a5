"""Shared fixtures: every test gets its own PostgreSQL databases, RabbitMQ vhost and Redis keys.

Nothing here fakes a server: integration and end-to-end tests run against the real local
PostgreSQL, RabbitMQ and Redis (`make test` makes sure they are up). Databases, vhosts and Redis
key prefixes carry a random suffix and are dropped afterwards, so runs never collide, not even
concurrent ones.

Each service's schema is migrated once per session, into a template database; a test's database
is a copy of it (`tests/support/databases.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from limits.aio.storage import RedisStorage

from shared.persistence.database import Database, drop_database
from tests.support.databases import create_templates, drop_templates, new_database
from tests.support.names import unique_suffix
from tests.support.redis import REDIS
from tests.support.vhosts import VhostSupply

pytest_plugins = ["tests.support.servers.plugin", "tests.support.machine"]


@pytest.fixture(scope="session")
def vhosts() -> Iterator[VhostSupply]:
    supply = VhostSupply()
    yield supply
    supply.close()


@pytest.fixture
def amqp_url(vhosts: VhostSupply) -> Iterator[str]:
    name, url = vhosts.take()
    yield url
    vhosts.discard(name)


@pytest.fixture(scope="session")
async def migrated_templates() -> AsyncIterator[None]:
    """Each service's schema at head, once per session, for tests' databases to copy."""
    await create_templates()
    yield
    await drop_templates()


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
async def inventory_db(migrated_templates: None) -> AsyncIterator[str]:
    url = await new_database("inventory_svc")
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


@pytest.fixture
async def inventory_database(inventory_db: str) -> AsyncIterator[Database]:
    database = Database(inventory_db, pool_size=4)
    yield database
    await database.close()


@pytest.fixture
async def redis_key_prefix() -> AsyncIterator[str]:
    """A `RATE_LIMIT_KEY_PREFIX` of the test's own in the local Redis; its keys go afterwards."""
    prefix = f"test-{unique_suffix()}"
    yield prefix
    await RedisStorage(f"async+{REDIS}", key_prefix=prefix).reset()
