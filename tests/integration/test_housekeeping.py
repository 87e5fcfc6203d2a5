"""Housekeeping against real PostgreSQL: old rows go, in batches, without waiting on locks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.housekeeping import Housekeeper
from user_svc.models import inbox, outbox

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)


@pytest.fixture
async def engine(user_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(user_db, pool_size=4)
    yield engine
    await engine.dispose()


def housekeeper(engine: AsyncEngine, batch_size: int = 5_000) -> Housekeeper:
    return Housekeeper(
        engine=engine,
        outbox=outbox,
        inbox=inbox,
        outbox_retention_seconds=HOUR.total_seconds(),
        inbox_retention_seconds=HOUR.total_seconds(),
        interval_seconds=60,
        batch_size=batch_size,
    )


async def add_outbox_rows(
    engine: AsyncEngine, count: int, *, published_ago: timedelta | None
) -> None:
    published_at = None if published_ago is None else func.now() - published_ago
    async with engine.begin() as connection:
        await connection.execute(
            insert(outbox),
            [
                {"id": uuid.uuid4(), "type": "user.updated", "subject": "s", "body": b"{}"}
                for _ in range(count)
            ],
        )
        await connection.execute(
            update(outbox).where(outbox.c.published_at.is_(None)).values(published_at=published_at)
        )


async def add_inbox_rows(engine: AsyncEngine, count: int, *, processed_ago: timedelta) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(inbox),
            [
                {
                    "consumer": "user_svc.events",
                    "event_id": uuid.uuid4(),
                    "event_type": "order.created",
                    "processed_at": datetime.now(UTC) - processed_ago,
                }
                for _ in range(count)
            ],
        )


async def count(engine: AsyncEngine, table: object) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_published_outbox_rows_older_than_the_retention_are_removed(
    engine: AsyncEngine,
) -> None:
    await add_outbox_rows(engine, 3, published_ago=2 * HOUR)
    await add_outbox_rows(engine, 2, published_ago=timedelta(minutes=1))

    assert await housekeeper(engine).remove_published() == 3
    assert await count(engine, outbox) == 2


async def test_unpublished_outbox_rows_are_never_removed_however_old(engine: AsyncEngine) -> None:
    await add_outbox_rows(engine, 2, published_ago=None)
    async with engine.begin() as connection:
        await connection.execute(update(outbox).values(created_at=func.now() - 48 * HOUR))

    assert await housekeeper(engine).remove_published() == 0
    assert await count(engine, outbox) == 2


async def test_inbox_rows_older_than_the_retention_are_removed(engine: AsyncEngine) -> None:
    await add_inbox_rows(engine, 4, processed_ago=2 * HOUR)
    await add_inbox_rows(engine, 1, processed_ago=timedelta(minutes=5))

    assert await housekeeper(engine).remove_processed() == 4
    assert await count(engine, inbox) == 1


async def test_a_large_backlog_is_removed_in_many_small_batches(engine: AsyncEngine) -> None:
    await add_inbox_rows(engine, 1_050, processed_ago=2 * HOUR)

    assert await housekeeper(engine, batch_size=100).remove_processed() == 1_050
    assert await count(engine, inbox) == 0


async def test_a_row_locked_by_another_transaction_is_skipped_not_waited_for(
    engine: AsyncEngine,
) -> None:
    await add_outbox_rows(engine, 5, published_ago=2 * HOUR)
    async with engine.connect() as other:
        await other.begin()
        locked = await other.scalar(select(outbox.c.seq).limit(1).with_for_update())

        removed = await asyncio.wait_for(housekeeper(engine).remove_published(), timeout=10)

        await other.rollback()
    assert removed == 4
    async with engine.connect() as connection:
        assert await connection.scalar(select(outbox.c.seq)) == locked
