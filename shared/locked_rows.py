"""Rows a transaction has locked up front, for a batch of events: one statement, not one each.

The consumer applies several events in one transaction, and each handler starts by locking the
row it will change (`SELECT .. FOR UPDATE`): a round trip per event, and on loopback the round
trip is what a handler costs most (see README Performance). A unit of work can instead lock the
rows of the whole batch in one statement before the handlers run, and let its repository answer
their reads from what that statement returned.

That answer stays exact for the rest of the transaction: the rows are locked, so no other
transaction can change them, and this transaction changes them only through its repository,
which records each save here (`saved`). The locks are taken in key order, so two batches that
share rows wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import HotQuery


class LockedRows:
    def __init__(self, lock_many: HotQuery, *, keys: str, key_column: str = "id") -> None:
        """`lock_many` locks and returns the rows whose keys are in the array parameter `keys`,
        ordered by key."""
        self._lock_many = lock_many
        self._keys = keys
        self._key_column = key_column
        self._rows: dict[Any, dict[str, Any]] = {}

    async def lock(self, connection: AsyncConnection, keys: Collection[Any]) -> None:
        """Lock the rows with these keys (those that exist) until the transaction ends."""
        if not keys:
            return
        rows = await self._lock_many.fetch(connection, **{self._keys: list(set(keys))})
        self._rows.update({row[self._key_column]: dict(row) for row in rows})

    def get(self, key: Any) -> Mapping[str, Any] | None:
        """The row as it stands now, if this transaction locked it here."""
        return self._rows.get(key)

    def saved(self, key: Any, values: Mapping[str, Any]) -> None:
        """Record that the transaction wrote `values` to the row (if it is one locked here)."""
        row = self._rows.get(key)
        if row is not None:
            row.update(values)
