"""Test databases on the local PostgreSQL: each service's schema migrated once per session into
a template, and every test database a copy of it (`CREATE DATABASE .. TEMPLATE`), which costs a
file copy instead of a migration. Names carry a random suffix, so runs never collide."""

from __future__ import annotations

import os
import uuid

import asyncpg

from shared.persistence.database import (
    drop_database,
    dsn,
    ensure_database,
    with_database,
)
from shared.persistence.migrations import migrate

POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
SERVICES = ("user_svc", "order_svc")
RUN = uuid.uuid4().hex[:8]


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
    """A new database for `package` (user_svc or order_svc) with its schema at head; the
    session's templates must exist (the `migrated_templates` fixture)."""
    name = f"test_{package}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn(with_database(POSTGRES, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_template(package)}"')
    finally:
        await admin.close()
    return f"{POSTGRES}/{name}"
