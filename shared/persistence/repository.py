"""What a repository owes its unit of work: the aggregates it handed out, and writes it held.

A repository remembers every aggregate it loaded or added (`seen`). The unit of work gathers the
events those aggregates raised when it commits, so a handler changes an aggregate and saves it,
and its events follow by themselves: there is no list of events to keep by hand, and none to
forget. An aggregate that was never added (an insert that lost to a concurrent one) is not
remembered, and its events go nowhere.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

import asyncpg

from shared.events import DomainEvent


class Aggregate(Protocol):
    events: list[DomainEvent]


A = TypeVar("A", bound=Aggregate)


class Repository(Generic[A]):
    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self._seen: dict[int, A] = {}

    def seen(self, aggregate: A) -> A:
        """Remember `aggregate` (by identity) until the unit of work ends."""
        self._seen[id(aggregate)] = aggregate
        return aggregate

    def take_events(self) -> list[DomainEvent]:
        """The events the remembered aggregates raised since the last call, in order."""
        taken: list[DomainEvent] = []
        for aggregate in self._seen.values():
            taken.extend(aggregate.events)
            aggregate.events.clear()
        return taken

    async def flush(self) -> None:
        """Write what this repository held back for the batch; nothing by default."""
