"""Housekeeping against real PostgreSQL: old rows go, in batches, without waiting on locks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Interval, bindparam, func, insert, select, update

from shared.messaging.housekeeping import Housekeeper
from shared.persistence.database import Database
from shared.persistence.statements import Statement
from tests.integration.rows import count_rows
from user_svc.models import inbox, outbox

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)

_ADD_OUTBOX_ROW = Statement(
    insert(outbox).values(
        {
            **{name: bindparam(name) for name in ("id", "type", "subject", "body")},
            "published_at": func.now() - bindparam("published_ago", type_=Interval),
        }
    )
)
_AGE_OUTBOX = Statement(
    update(outbox).values(created_at=func.now() - bindparam("age", type_=Interval))
)
_ADD_INBOX_ROW = Statement(
    insert(inbox).values(
        {name: bindparam(name) for name in ("consumer", "event_id", "event_type", "processed_at")}
    )
)
_LOCK_ONE_OUTBOX_ROW = Statement(select(outbox.c.seq).limit(bindparam("limit")).with_for_update())
_OUTBOX_SEQS = Statement(select(outbox.c.seq))


def housekeeper(database: Database, batch_size: int = 5_000) -> Housekeeper:
    return Housekeeper(
        database=database,
        outbox=outbox,
        inbox=inbox,
        outbox_retention_seconds=HOUR.total_seconds(),
        inbox_retention_seconds=HOUR.total_seconds(),
        interval_seconds=60,
        batch_size=batch_size,
    )


async def add_outbox_rows(
    database: Database, count: int, *, published_ago: timedelta | None
) -> None:
    async with database.transaction() as connection:
        await _ADD_OUTBOX_ROW.executemany(
            connection,
            [
                {
                    "id": uuid.uuid4(),
                    "type": "user.updated",
                    "subject": "s",
                    "body": b"{}",
                    "published_ago": published_ago,
                }
                for _ in range(count)
            ],
        )


async def add_inbox_rows(database: Database, count: int, *, processed_ago: timedelta) -> None:
    processed_at = datetime.now(UTC) - processed_ago
    async with database.transaction() as connection:
        await _ADD_INBOX_ROW.executemany(
            connection,
            [
                {
                    "consumer": "user_svc.events",
                    "event_id": uuid.uuid4(),
                    "event_type": "order.created",
                    "processed_at": processed_at,
                }
                for _ in range(count)
            ],
        )


async def test_published_outbox_rows_older_than_the_retention_are_removed(
    user_database: Database,
) -> None:
    await add_outbox_rows(user_database, 3, published_ago=2 * HOUR)
    await add_outbox_rows(user_database, 2, published_ago=timedelta(minutes=1))

    assert await housekeeper(user_database).remove_published() == 3
    assert await count_rows(user_database, outbox) == 2


async def test_unpublished_outbox_rows_are_never_removed_however_old(
    user_database: Database,
) -> None:
    await add_outbox_rows(user_database, 2, published_ago=None)
    async with user_database.transaction() as connection:
        await _AGE_OUTBOX.execute(connection, age=48 * HOUR)

    assert await housekeeper(user_database).remove_published() == 0
    assert await count_rows(user_database, outbox) == 2


async def test_inbox_rows_older_than_the_retention_are_removed(user_database: Database) -> None:
    await add_inbox_rows(user_database, 4, processed_ago=2 * HOUR)
    await add_inbox_rows(user_database, 1, processed_ago=timedelta(minutes=5))

    assert await housekeeper(user_database).remove_processed() == 4
    assert await count_rows(user_database, inbox) == 1


async def test_a_large_backlog_is_removed_in_many_small_batches(user_database: Database) -> None:
    await add_inbox_rows(user_database, 1_050, processed_ago=2 * HOUR)

    assert await housekeeper(user_database, batch_size=100).remove_processed() == 1_050
    assert await count_rows(user_database, inbox) == 0


async def test_a_row_locked_by_another_transaction_is_skipped_not_waited_for(
    user_database: Database,
) -> None:
    await add_outbox_rows(user_database, 5, published_ago=2 * HOUR)
    async with user_database.transaction() as other:
        locked = await _LOCK_ONE_OUTBOX_ROW.fetchval(other, limit=1)

        removed = await asyncio.wait_for(housekeeper(user_database).remove_published(), timeout=10)

    assert removed == 4
    async with user_database.connection() as connection:
        assert [row["seq"] for row in await _OUTBOX_SEQS.fetch(connection)] == [locked]
