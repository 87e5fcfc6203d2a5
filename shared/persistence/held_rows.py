"""Rows a batch's transaction read up front: answered from memory, written back in one
statement, instead of a read and a write per event.

The consumer applies several events in one transaction, and each handler reads the rows it
decides on and writes them back: round trips per event, and on loopback the round trip is most
of what a handler costs (docs/design/performance.md). A unit of work can instead read the rows of
the whole batch in one statement before the handlers run (`UnitOfWork.preload`), answer their
reads from what that statement returned, and hold their inserts and updates back until commit,
where one `INSERT .. SELECT unnest(..)` and one `UPDATE .. FROM unnest(..)` write them all
(`Repository.flush`). A single message or an HTTP command takes the same path with one row:
every row a transaction changes is loaded through here first, and written back at commit.

This stays exact while nobody else can change the rows: they are locked (`lock=True`, in key
order, so two batches that share rows wait for each other instead of deadlocking), or the
service guarantees it otherwise (user_svc writes an order's reservation only under its user's
lock). The database keeps the last word anyway: a held insert still conflicts on its key
(`Conflict`), a versioned update still names the version it read (`StaleVersion`), and a
failed batch is applied again one message at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, Column, Table, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert

from shared.errors import Conflict, StaleVersion
from shared.persistence.statements import Statement


class HeldRows:
    """Rows of one table keyed by one column; versioned if the table has a `version`."""

    def __init__(
        self, table: Table, *, key: str = "id", columns: Collection[Any] | None = None
    ) -> None:
        """`columns`: what a row holds (the table's columns by default; more, such as
        aggregated child rows, are read along but never written back)."""
        self._table = table
        self._key = key
        self._versioned = "version" in table.c
        self._columns = tuple(columns or table.columns)
        self._rows: dict[Any, dict[str, Any] | None] = {}
        self._locked: set[Any] = set()
        self._stored_versions: dict[Any, int] = {}
        self._inserted: list[Any] = []
        self._changed: dict[Any, set[str]] = {}

    async def load(
        self, connection: asyncpg.Connection, keys: Collection[Any], *, lock: bool
    ) -> None:
        """Read the rows with these keys in one statement, locked until the transaction ends if
        `lock`; afterwards this knows each key, as a row or as absent. A row read unlocked
        before is read again, locked, as long as this transaction has not changed it."""
        known = self._locked if lock else self._rows
        new = {key for key in keys if key not in known}
        if not new:
            return
        if changed := new & (self._changed.keys() | set(self._inserted)):
            raise RuntimeError(
                f"{self._table.name} {sorted(map(str, changed))} changed before they were locked"
            )
        rows = await _select_many(self._table, self._key, self._columns, lock).fetch(
            connection, keys=list(new)
        )
        if lock:
            self._locked |= new
        self._rows.update(dict.fromkeys(new))
        for row in rows:
            self._rows[row[self._key]] = dict(row)
            if self._versioned:
                self._stored_versions[row[self._key]] = row["version"]

    def knows(self, key: Any) -> bool:
        return key in self._rows

    def get(self, key: Any) -> Mapping[str, Any] | None:
        """The row as it stands in this transaction, if it was loaded here and exists."""
        return self._rows.get(key)

    async def insert(self, connection: asyncpg.Connection, values: Mapping[str, Any]) -> bool:
        """Insert a row; False if its key is taken. Held back until `flush` if the key was
        loaded (absent), written now otherwise."""
        key = values[self._key]
        if key not in self._rows:
            inserted = await _insert_one(self._table, self._key, tuple(values)).fetchrow(
                connection, **values
            )
            if inserted is None:
                return False
            self._rows[key] = dict(values)
            if self._versioned:
                self._stored_versions[key] = values["version"]
            return True
        if self._rows[key] is not None:
            return False
        self._rows[key] = dict(values)
        self._inserted.append(key)
        return True

    def update(
        self, key: Any, values: Mapping[str, Any], *, expected_version: int | None = None
    ) -> None:
        """Change a row this transaction loaded (`values` include the new `version` of a
        versioned row, which must still be at `expected_version`), held back until `flush`."""
        row = self._rows.get(key)
        if row is None:
            raise LookupError(f"{self._table.name} {key} was not loaded in this transaction")
        if self._versioned and row["version"] != expected_version:
            raise StaleVersion(
                f"{self._table.name} {key} is no longer at version {expected_version}"
            )
        row.update(values)
        if key not in self._inserted:
            self._changed.setdefault(key, set()).update(values)

    async def flush(self, connection: asyncpg.Connection) -> None:
        """Write every held-back insert in one statement, then every held-back update in
        another."""
        await self._flush_inserts(connection)
        await self._flush_updates(connection)

    async def _flush_inserts(self, connection: asyncpg.Connection) -> None:
        """One statement per set of columns the held rows have: a row changed after it was
        held may have gained a column the others do not set (they keep its default)."""
        if not self._inserted:
            return
        keys, self._inserted = self._inserted, []
        by_columns: dict[tuple[str, ...], list[Any]] = {}
        for key in keys:
            by_columns.setdefault(tuple(sorted(self._row(key))), []).append(key)
        for columns, same in by_columns.items():
            written = await _insert_many(self._table, self._key, columns).fetch(
                connection,
                **{f"_{name}": [self._row(key)[name] for key in same] for name in columns},
            )
            if len(written) != len(same):
                raise Conflict(f"another transaction wrote {self._table.name} rows of this batch")
        if self._versioned:
            self._stored_versions.update((key, self._version_of(key)) for key in keys)

    async def _flush_updates(self, connection: asyncpg.Connection) -> None:
        if not self._changed:
            return
        changed, self._changed = self._changed, {}
        columns = tuple(sorted(set().union(*changed.values())))
        keys = list(changed)
        arrays = {f"_{name}": [self._row(key)[name] for key in keys] for name in columns}
        if self._versioned:
            arrays["_stored_versions"] = [self._stored_versions[key] for key in keys]
        written = await _update_many(self._table, self._key, columns, self._versioned).fetch(
            connection, _keys=keys, **arrays
        )
        if len(written) != len(keys):
            raise StaleVersion(f"{self._table.name} rows changed under this transaction")
        if self._versioned:
            self._stored_versions.update((key, self._version_of(key)) for key in keys)

    def _row(self, key: Any) -> dict[str, Any]:
        row = self._rows[key]
        assert row is not None
        return row

    def _version_of(self, key: Any) -> int:
        version: int = self._row(key)["version"]
        return version


def _array(column: Column[Any], name: str) -> Any:
    return bindparam(name, type_=ARRAY(column.type))


@functools.cache
def _select_many(table: Table, key: str, columns: tuple[Any, ...], lock: bool) -> Statement:
    query = select(*columns).where(table.c[key] == any_(_array(table.c[key], "keys")))
    if lock:
        query = query.order_by(table.c[key]).with_for_update(of=table)
    return Statement(query)


@functools.cache
def _insert_one(table: Table, key: str, columns: tuple[str, ...]) -> Statement:
    return Statement(
        insert(table)
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        .on_conflict_do_nothing(index_elements=[table.c[key]])
        .returning(table.c[key])
    )


@functools.cache
def _insert_many(table: Table, key: str, columns: tuple[str, ...]) -> Statement:
    """`INSERT .. SELECT unnest(..)`: each array parameter is one column of the new rows."""
    rows = select(*(func.unnest(_array(table.c[name], f"_{name}")) for name in columns))
    return Statement(
        insert(table)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=[table.c[key]])
        .returning(table.c[key])
    )


@functools.cache
def _update_many(table: Table, key: str, columns: tuple[str, ...], versioned: bool) -> Statement:
    """`UPDATE .. FROM unnest(..)`: each array parameter is one column of the changed rows,
    and a versioned row is written only if it is still at the version this transaction read."""
    names = ["_keys", *(f"_{name}" for name in columns)]
    types = [table.c[key].type, *(table.c[name].type for name in columns)]
    if versioned:
        names.append("_stored_versions")
        types.append(table.c.version.type)
    changes = (
        func.unnest(*(bindparam(n, type_=ARRAY(t)) for n, t in zip(names, types, strict=True)))
        .table_valued(*names)
        .render_derived()
    )
    condition = [table.c[key] == changes.c._keys]
    if versioned:
        condition.append(table.c.version == changes.c._stored_versions)
    return Statement(
        update(table)
        .where(*condition)
        .values({name: changes.c[f"_{name}"] for name in columns})
        .returning(table.c[key])
    )
