"""The body of every service's Alembic `env.py`: async, online only, one migrator at a time.

Replicas of a service start together and each runs its migrations; a transaction-scoped
advisory lock makes the second wait for the first and then find nothing left to do.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

MIGRATION_LOCK_KEY = 7_263_514_001


def _run(connection: Connection, metadata: MetaData) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_online(metadata: MetaData) -> None:
    # `alembic -x url=...` (scripts/new-migration.sh) names a database other than the ini's.
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if url is None:
        raise RuntimeError("sqlalchemy.url is not configured")
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run, metadata)
    finally:
        await engine.dispose()


def run_migrations(metadata: MetaData) -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline (SQL script) migrations are not supported")
    asyncio.run(_run_online(metadata))
