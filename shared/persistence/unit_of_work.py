"""The unit of work: one connection, one transaction, rolled back unless committed.

It owns the connection and the transaction for as long as the block runs, and every statement of
the block runs on them. Its repositories remember the aggregates they handed out; `commit`
gathers the events those aggregates raised, writes them to the outbox and commits state and
events together, so there is no moment at which one exists without the other.

Each gathered event is wrapped in its CloudEvent envelope with its cause (the event being
handled, none for a request) and the trace current at that moment. One transaction may apply a
batch of messages: the consumer handles each inside `caused_by`, which gathers that message's
events as it ends, so every event names the message that caused it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager, suppress
from types import TracebackType
from typing import Any, Self

import asyncpg
from asyncpg.transaction import Transaction
from sqlalchemy import Table

from shared.messaging import outbox
from shared.messaging.envelope import CloudEvent, wrap
from shared.observability.tracing import current_traceparent
from shared.persistence.database import UNAVAILABLE, Database
from shared.persistence.repository import Repository


class UnitOfWork:
    def __init__(self, database: Database, *, outbox_table: Table, source: str) -> None:
        self._database = database
        self._outbox = outbox_table
        self._source = source
        self._cause: CloudEvent | None = None
        self._stack: AsyncExitStack | None = None
        self._connection: asyncpg.Connection | None = None
        self._transaction: Transaction | None = None
        self._repositories: Sequence[Repository[Any]] = ()
        self._gathered: list[CloudEvent] = []

    @property
    def connection(self) -> asyncpg.Connection:
        if self._connection is None:
            raise RuntimeError("the unit of work is used outside `async with`")
        return self._connection

    def open(self, connection: asyncpg.Connection) -> Sequence[Repository[Any]]:
        """The service's repositories on this transaction's connection; none by default."""
        return ()

    async def __aenter__(self) -> Self:
        stack = AsyncExitStack()
        connection = await stack.enter_async_context(self._database.connection())
        try:
            transaction = connection.transaction()
            await transaction.start()
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._connection, self._transaction = stack, connection, transaction
        self._cause, self._gathered = None, []
        self._repositories = self.open(connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, connection, transaction = self._stack, self._connection, self._transaction
        self._stack = self._connection = self._transaction = None
        assert stack is not None
        assert connection is not None
        assert transaction is not None
        async with stack:
            if connection.is_in_transaction():
                # A connection that broke has no transaction left to roll back, and the pool
                # discards it on release; the error that ended the block is the one to raise.
                with suppress(*UNAVAILABLE):
                    await transaction.rollback()

    async def preload(self, events: Sequence[Any]) -> None:
        """Called by the consumer with a batch's events before their handlers run, so that a
        service can read (and lock) in one statement the rows its handlers would each ask for
        (`shared.persistence.held_rows`). Nothing by default."""

    @contextmanager
    def caused_by(self, cause: CloudEvent) -> Iterator[None]:
        """Events raised inside the block are caused by `cause`; those raised before it keep
        the cause they were raised under."""
        self._gather()
        previous, self._cause = self._cause, cause
        try:
            yield
            self._gather()
        finally:
            self._cause = previous

    def _gather(self) -> None:
        traceparent = current_traceparent()
        for repository in self._repositories:
            for event in repository.take_events():
                self._gathered.append(
                    wrap(event, source=self._source, cause=self._cause, traceparent=traceparent)
                )

    async def commit(self) -> list[CloudEvent]:
        """Commit the state change and its events together; return the envelopes written."""
        if self._transaction is None:
            raise RuntimeError("the unit of work is used outside `async with`")
        self._gather()
        for repository in self._repositories:
            await repository.flush()
        envelopes, self._gathered = self._gathered, []
        await outbox.append(self.connection, self._outbox, envelopes)
        await self._transaction.commit()
        return envelopes
