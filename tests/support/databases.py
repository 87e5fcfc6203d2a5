"""Test databases on the local PostgreSQL: each service's schema migrated once per session into
a template, and every test database a copy of it (`CREATE DATABASE .. TEMPLATE`), which costs a
file copy instead of a migration. Names carry the session's tag and a random suffix
(`tests.support.names`), so runs never collide and the session's guard can tell what it left
behind."""

from __future__ import annotations

import os

import asyncpg

from shared.persistence.database import (
    drop_database,
    dsn,
    ensure_database,
    with_database,
)
from shared.persistence.migrations import migrate
from tests.support.names import unique_suffix

POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
SERVICES = ("user_svc", "order_svc", "inventory_svc")
RUN = unique_suffix()


def _template(package: str) -> str:
    return f"test_template_{package}_{RUN}"


async def create_templates() -> None:
    """Each service's schema at head, for this session's test databases to copy."""
    for package in SERVICES:
        url = f"{POSTGRES}/{_template(package)}"
        await ensure_database(url)
        await migrate(package, url)


async def drop_templates() -> None:
    for package in SERVICES:
        await drop_database(f"{POSTGRES}/{_template(package)}")


async def new_database(package: str) -> str:
    """A new database for `package` (a service) with its schema at head; the
    session's templates must exist (the `migrated_templates` fixture)."""
    name = f"test_{package}_{unique_suffix()}"
    admin = await asyncpg.connect(dsn(with_database(POSTGRES, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_template(package)}"')
    finally:
        await admin.close()
    return f"{POSTGRES}/{name}"
