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

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Delete, func

log = logging.getLogger(__name__)


class Housekeeper:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        outbox: Table,
        inbox: Table,
        outbox_retention_seconds: float,
        inbox_retention_seconds: float,
        interval_seconds: float,
        batch_size: int = 5_000,
    ) -> None:
        self._engine = engine
        self._outbox = outbox
        self._inbox = inbox
        self._outbox_retention = timedelta(seconds=outbox_retention_seconds)
        self._inbox_retention = timedelta(seconds=inbox_retention_seconds)
        self._interval = interval_seconds
        self._batch_size = batch_size

    async def run(self) -> None:
        """Sweep every interval until cancelled; a failed sweep is logged and tried next time."""
        while True:
            try:
                outbox, inbox = await self.remove_published(), await self.remove_processed()
                if outbox or inbox:
                    log.info("housekeeping removed %d outbox and %d inbox rows", outbox, inbox)
            except Exception:
                log.exception("housekeeping failed, trying again in %.0fs", self._interval)
            await asyncio.sleep(self._interval)

    async def remove_published(self) -> int:
        """Delete outbox rows published longer ago than the retention; never unpublished ones."""
        outbox = self._outbox
        oldest = (
            select(outbox.c.seq)
            .where(outbox.c.published_at < func.now() - self._outbox_retention)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
        )
        return await self._delete_in_batches(
            delete(outbox).where(outbox.c.seq.in_(oldest.scalar_subquery()))
        )

    async def remove_processed(self) -> int:
        """Delete inbox rows of events processed longer ago than the retention."""
        inbox = self._inbox
        key = tuple_(inbox.c.consumer, inbox.c.event_id)
        oldest = (
            select(inbox.c.consumer, inbox.c.event_id)
            .where(inbox.c.processed_at < func.now() - self._inbox_retention)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
        )
        return await self._delete_in_batches(delete(inbox).where(key.in_(oldest)))

    async def _delete_in_batches(self, statement: Delete) -> int:
        removed = 0
        while True:
            async with self._engine.begin() as connection:
                result = await connection.execute(statement)
            removed += int(result.rowcount)
            if result.rowcount < self._batch_size:
                return removed
