"""What a test's database holds, read straight from its tables (never through the code under
test)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.sql import Select

from shared.messaging.envelope import CloudEvent, decode
from shared.persistence.database import Database
from shared.persistence.statements import Statement


async def fetch(database: Database, query: Select[Any], **params: Any) -> list[Any]:
    async with database.connection() as connection:
        return list(await Statement(query).fetch(connection, **params))


async def count_rows(database: Database, table: Table) -> int:
    async with database.connection() as connection:
        count: int = await Statement(select(func.count()).select_from(table)).fetchval(connection)
    return count


async def outbox_events(database: Database, outbox: Table) -> list[CloudEvent]:
    """The envelopes in the outbox, in the order they were written."""
    rows = await fetch(database, select(outbox.c.body).order_by(outbox.c.seq))
    return [decode(row["body"])[0] for row in rows]


async def outbox_types(database: Database, outbox: Table) -> list[str]:
    return [
        row["type"] for row in await fetch(database, select(outbox.c.type).order_by(outbox.c.seq))
    ]
