"""Observing PostgreSQL lock waits, for tests that must prove a second writer really waited."""

from __future__ import annotations

import asyncio

import asyncpg

from shared.persistence.database import Database, dsn

WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def wait_until_a_backend_waits_on_a_lock(database: Database, within: float = 5.0) -> None:
    """On a connection of its own, outside the pool the waiting transactions use."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    observer = await asyncpg.connect(dsn(database.url))
    try:
        # Each poll is a statement of its own, so each sees a fresh pg_stat_activity.
        while not await observer.fetchval(WAITING_ON_A_LOCK):
            if loop.time() > deadline:
                raise AssertionError(f"nothing waited on a lock within {within}s")
            await asyncio.sleep(0.01)
    finally:
        await observer.close()
