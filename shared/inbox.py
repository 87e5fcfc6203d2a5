"""The idempotent-consumer check: a primary key on (consumer, event id), not a lookup.

`claim` inserts the tracking row in the same transaction as the event's effect. A duplicate
delivery conflicts on the key and is skipped. If the first delivery is still in flight in another
transaction, PostgreSQL makes the insert wait for it: if that one commits, this one is a
duplicate; if it rolls back, this one claims the event. No read-then-insert race is possible.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection


async def claim(
    connection: AsyncConnection, inbox: Table, *, consumer: str, event_id: UUID, event_type: str
) -> bool:
    """Record that `consumer` processes `event_id` now; False if it already did."""
    result = await connection.execute(
        insert(inbox)
        .values(consumer=consumer, event_id=event_id, event_type=event_type)
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.event_id)
    )
    return result.first() is not None


async def claim_many(
    connection: AsyncConnection, inbox: Table, *, consumer: str, events: Sequence[tuple[UUID, str]]
) -> set[UUID]:
    """`claim` for a batch of (event id, type) in one statement: the ids claimed now."""
    result = await connection.execute(
        insert(inbox)
        .values([{"consumer": consumer, "event_id": i, "event_type": t} for i, t in events])
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.event_id)
    )
    return set(result.scalars())
