"""The unit of work: one database transaction, rolled back unless explicitly committed.

It owns the transaction and the events raised during it. Each raised event is wrapped in its
CloudEvent envelope when it is raised, linked to the event or request that caused it (`cause`,
and the trace that is current then), so one transaction can apply a batch of messages, each
with its own cause. `commit()` appends them to the outbox and commits state and events
together: there is no window in which one exists without the other. Services subclass it to
expose their repositories on the same connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import outbox
from shared.envelope import CloudEvent, wrap
from shared.events import DomainEvent
from shared.tracing import current_traceparent


class UnitOfWork:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        outbox_table: Table,
        source: str,
        cause: CloudEvent | None = None,
    ) -> None:
        self._engine = engine
        self._outbox = outbox_table
        self._source = source
        self.cause = cause
        self._connection: AsyncConnection | None = None
        self._raised: list[CloudEvent] = []

    @property
    def connection(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("the unit of work is used outside `async with`")
        return self._connection

    async def __aenter__(self) -> Self:
        self._connection = await self._engine.connect()
        await self._connection.begin()
        self._raised = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self.connection, None
        try:
            if connection.in_transaction():
                await connection.rollback()
        finally:
            await connection.close()

    async def preload(self, events: Sequence[Any]) -> None:
        """Called by the consumer with a batch's events before their handlers run, so that a
        service can lock and read in one statement the rows its handlers would each ask for,
        and hold their writes back until `flush` (`shared.locked_rows`). Nothing by default."""

    async def flush(self) -> None:
        """Write what the repositories held back; `commit` calls it first. Nothing by default."""

    def emit(self, *events: DomainEvent) -> None:
        traceparent = current_traceparent()
        self._raised.extend(
            wrap(e, source=self._source, cause=self.cause, traceparent=traceparent) for e in events
        )

    async def commit(self) -> list[CloudEvent]:
        """Commit the state change and its events together; return the envelopes written."""
        await self.flush()
        envelopes = self._raised
        await outbox.append(self.connection, self._outbox, envelopes)
        await self.connection.commit()
        self._raised = []
        return envelopes
