"""Housekeeping: delete published outbox rows and old inbox rows after their retention.

Both tables would otherwise grow with the history, and so would the cost of every claim and
every idempotency check. Deletion runs in small batches, each its own short transaction that
skips rows another replica is deleting (`FOR UPDATE SKIP LOCKED`), so no long lock is ever held
and several replicas can sweep at once.

The inbox retention bounds how late a duplicate can arrive and still be recognised: it must be
longer than any redelivery can take (broker outage, retries, a DLQ replay). The default, seven
days, is far beyond the retry schedule; shorten it only with that in mind.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Interval, Table, bindparam, delete, select, tuple_
from sqlalchemy.sql import func

from shared.observability.tracing import untraced
from shared.persistence.database import Database
from shared.persistence.statements import Statement

log = logging.getLogger(__name__)


class Housekeeper:
    def __init__(
        self,
        *,
        database: Database,
        outbox: Table,
        inbox: Table,
        outbox_retention_seconds: float,
        inbox_retention_seconds: float,
        interval_seconds: float,
        batch_size: int = 5_000,
    ) -> None:
        self._database = database
        self._outbox_retention = timedelta(seconds=outbox_retention_seconds)
        self._inbox_retention = timedelta(seconds=inbox_retention_seconds)
        self._interval = interval_seconds
        self._batch_size = batch_size
        self._remove_published = _oldest_removed(outbox, outbox.c.published_at, outbox.c.seq)
        self._remove_processed = _oldest_removed(
            inbox, inbox.c.processed_at, inbox.c.consumer, inbox.c.event_id
        )

    async def run(self) -> None:
        """Sweep every interval until cancelled; a failed sweep is logged and tried next time."""
        while True:
            try:
                with untraced():
                    outbox, inbox = await self.remove_published(), await self.remove_processed()
                if outbox or inbox:
                    log.info("housekeeping removed %d outbox and %d inbox rows", outbox, inbox)
            except Exception:
                log.exception("housekeeping failed, trying again in %.0fs", self._interval)
            await asyncio.sleep(self._interval)

    async def remove_published(self) -> int:
        """Delete outbox rows published longer ago than the retention; never unpublished ones
        (their `published_at` is NULL, which is older than nothing)."""
        return await self._delete_in_batches(self._remove_published, self._outbox_retention)

    async def remove_processed(self) -> int:
        """Delete inbox rows of events processed longer ago than the retention."""
        return await self._delete_in_batches(self._remove_processed, self._inbox_retention)

    async def _delete_in_batches(self, statement: Statement, retention: timedelta) -> int:
        removed = 0
        while True:
            async with self._database.transaction() as connection:
                status = await statement.execute(
                    connection, retention=retention, limit=self._batch_size
                )
            deleted = int(status.split()[-1])
            removed += deleted
            if deleted < self._batch_size:
                return removed


def _oldest_removed(table: Table, stamp: ColumnElement[Any], *key: ColumnElement[Any]) -> Statement:
    """Delete up to `limit` rows stamped longer than `retention` ago, skipping rows another
    replica is deleting."""
    oldest = (
        select(*key)
        .where(stamp < func.now() - bindparam("retention", type_=Interval))
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    return Statement(delete(table).where(tuple_(*key).in_(oldest)))
