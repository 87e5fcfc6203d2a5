"""Rows a transaction has locked up front, for a batch of events: read in one statement, written
back in one statement, instead of a read and a write per event.

The consumer applies several events in one transaction, and each handler locks the row it will
change (`SELECT .. FOR UPDATE`), then saves it with `WHERE version = :expected`: two round trips
per event, and on loopback the round trip is most of what a handler costs (see README
Performance). A unit of work can instead lock the rows of the whole batch in one statement
before the handlers run (`UnitOfWork.preload`), let its repository answer their reads from what
that statement returned, and hold their saves back until commit, where one `UPDATE .. FROM
unnest(..)` writes them all (`UnitOfWork.flush`).

This stays exact for the rest of the transaction: the rows are locked, so no other transaction
can change them, and this one changes them only through its repository, which saves through
here. A save still names the version it loaded, checked against the row as it stands here
(`StaleVersion` as before), and the final write is still conditional on the version each row
had when it was locked, so the database keeps the last word. The locks are taken in key
order, so two batches that share rows wait for each other instead of deadlocking.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import ARRAY, Table, any_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import HotQuery
from shared.errors import StaleVersion
from shared.versioning import save_versioned


class LockedRows:
    """Locked rows of one table, keyed by `id` and versioned by `version`."""

    def __init__(self, table: Table, *, columns: Collection[Any] | None = None) -> None:
        """`columns`: what a locked row holds (the table's columns by default; more, such as
        aggregated child rows, are read along but never written back)."""
        self._table = table
        self._lock_many = _lock_many(table, tuple(columns or table.columns))
        self._rows: dict[Any, dict[str, Any]] = {}
        self._locked_versions: dict[Any, int] = {}
        self._changed: dict[Any, set[str]] = {}  # the columns each held-back save wrote

    async def lock(self, connection: AsyncConnection, keys: Collection[Any]) -> None:
        """Lock the rows with these keys (those that exist) until the transaction ends."""
        if not keys:
            return
        rows = await self._lock_many.fetch(connection, keys=list(set(keys)))
        for row in rows:
            self._rows[row["id"]] = dict(row)
            self._locked_versions[row["id"]] = row["version"]

    def get(self, key: Any) -> Mapping[str, Any] | None:
        """The row as it stands now in this transaction, if it is locked here."""
        return self._rows.get(key)

    async def save(
        self,
        connection: AsyncConnection,
        key: Any,
        *,
        expected_version: int,
        values: Mapping[str, Any],
    ) -> None:
        """Write `values` (which include the new `version`) if the row is still at
        `expected_version`: held back until `flush` if the row is locked here, written now
        (`save_versioned`) if it is not."""
        row = self._rows.get(key)
        if row is None:
            await save_versioned(
                connection,
                self._table,
                key=key,
                expected_version=expected_version,
                values=values,
            )
            return
        if row["version"] != expected_version:
            raise StaleVersion(
                f"{self._table.name} {key} is no longer at version {expected_version}"
            )
        row.update(values)
        self._changed.setdefault(key, set()).update(values)

    async def flush(self, connection: AsyncConnection) -> None:
        """Write every held-back change in one statement."""
        if not self._changed:
            return
        changed, self._changed = self._changed, {}
        columns = tuple(sorted(set().union(*changed.values())))
        keys = list(changed)
        arrays = {name: [self._rows[key][name] for key in keys] for name in columns}
        written = await _update_many(self._table, columns).fetch(
            connection,
            _keys=keys,
            _locked_versions=[self._locked_versions[key] for key in keys],
            **{f"_{name}": values for name, values in arrays.items()},
        )
        if len(written) != len(keys):
            raise StaleVersion(f"{self._table.name} rows changed under their locks")
        self._locked_versions.update((key, self._rows[key]["version"]) for key in keys)


@functools.cache
def _lock_many(table: Table, columns: tuple[Any, ...]) -> HotQuery:
    return HotQuery(
        select(*columns)
        .where(table.c.id == any_(bindparam("keys", type_=ARRAY(table.c.id.type))))
        .order_by(table.c.id)
        .with_for_update(of=table)
    )


@functools.cache
def _update_many(table: Table, columns: tuple[str, ...]) -> HotQuery:
    """`UPDATE .. FROM unnest(..)`: each array parameter is one column of the changed rows."""
    names = ("_keys", "_locked_versions", *(f"_{name}" for name in columns))
    types = (table.c.id.type, table.c.version.type, *(table.c[name].type for name in columns))
    rows = (
        func.unnest(*(bindparam(n, type_=ARRAY(t)) for n, t in zip(names, types, strict=True)))
        .table_valued(*names)
        .render_derived()
    )
    return HotQuery(
        update(table)
        .where(table.c.id == rows.c._keys, table.c.version == rows.c._locked_versions)
        .values({name: rows.c[f"_{name}"] for name in columns})
        .returning(table.c.id)
    )
