"""Observing PostgreSQL lock waits, for tests that must prove a second writer really waited."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def wait_until_a_backend_waits_on_a_lock(engine: AsyncEngine, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with engine.connect() as observer:
        while True:
            waiting = (
                await observer.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
            await observer.rollback()  # a fresh snapshot of pg_stat_activity on each poll
            if waiting:
                return
            if loop.time() > deadline:
                raise AssertionError(f"nothing waited on a lock within {within}s")
            await asyncio.sleep(0.01)
