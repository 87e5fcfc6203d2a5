"""The idempotent-consumer check: a primary key on (consumer, event id), not a lookup.

`claim` inserts the tracking row in the same transaction as the event's effect. A duplicate
delivery conflicts on the key and is skipped. If the first delivery is still in flight in another
transaction, PostgreSQL makes the insert wait for it: if that one commits, this one is a
duplicate; if it rolls back, this one claims the event. No read-then-insert race is possible.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from uuid import UUID

import asyncpg
from sqlalchemy import ARRAY, Table, Text, Uuid, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert

from shared.persistence.statements import Statement


async def claim(
    connection: asyncpg.Connection, inbox: Table, *, consumer: str, event_id: UUID, event_type: str
) -> bool:
    """Record that `consumer` processes `event_id` now; False if it already did."""
    return bool(
        await claim_many(connection, inbox, consumer=consumer, events=[(event_id, event_type)])
    )


async def claim_many(
    connection: asyncpg.Connection,
    inbox: Table,
    *,
    consumer: str,
    events: Sequence[tuple[UUID, str]],
) -> set[UUID]:
    """`claim` for a batch of (event id, type) in one statement: the ids claimed now."""
    rows = await _claim(inbox).fetch(
        connection,
        consumer=consumer,
        event_ids=[event_id for event_id, _ in events],
        event_types=[event_type for _, event_type in events],
    )
    return {row["event_id"] for row in rows}


@functools.cache
def _claim(inbox: Table) -> Statement:
    """The batch travels as two arrays, so one statement (and one prepared plan) serves every
    batch size."""
    rows = select(
        bindparam("consumer", type_=Text),
        func.unnest(bindparam("event_ids", type_=ARRAY(Uuid))),
        func.unnest(bindparam("event_types", type_=ARRAY(Text))),
    )
    return Statement(
        insert(inbox)
        .from_select(["consumer", "event_id", "event_type"], rows)
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.event_id)
    )
