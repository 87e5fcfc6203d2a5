"""Writing events to the outbox, inside the transaction of the state change that caused them.

This is the only way an event leaves a service: nothing publishes to the broker from a request
or a handler. If the transaction rolls back, its events vanish with it; if it commits, the relay
will publish them (at least once). A trigger on the table (`shared.persistence.migration_ops`) sends
`NOTIFY outbox`, which is transactional too: the relay is woken exactly when the rows become
visible, never before.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import asyncpg
from sqlalchemy import Table, bindparam, insert

from shared.messaging.envelope import CloudEvent, encode
from shared.persistence.statements import Statement

# The channel the outbox trigger (migration 0002 of each service) notifies on.
NOTIFY_CHANNEL = "outbox"


async def append(
    connection: asyncpg.Connection, outbox: Table, events: Sequence[CloudEvent]
) -> None:
    if not events:
        return
    await _append(outbox).executemany(
        connection,
        [{"id": e.id, "type": e.type, "subject": e.subject, "body": encode(e)} for e in events],
    )


@functools.cache
def _append(outbox: Table) -> Statement:
    return Statement(
        insert(outbox).values({name: bindparam(name) for name in ("id", "type", "subject", "body")})
    )
