"""Versioned rows, enforced by PostgreSQL rather than by read-then-write in Python.

Two mechanisms, matching the contract's rule that *versions gate state copies*:

- `save_versioned`: optimistic concurrency for a service's own aggregates. The update carries
  `WHERE version = :expected`; of two writers racing from the same version, exactly one matches
  a row, the other gets `StaleVersion` and changes nothing.
- `apply_if_newer`: a replica of another service's aggregate. Each group of fields remembers the
  version it was last written at, and an `INSERT .. ON CONFLICT DO UPDATE` takes a group's new
  values only when the event's version is newer than that group's. Events that carry only part
  of the state (a rename, a deactivation) therefore converge to the in-order result under any
  reordering or duplication; the row's own `version` is the highest version applied.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, Table, bindparam, case, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import HotQuery
from shared.errors import StaleVersion


async def save_versioned(
    connection: AsyncConnection,
    table: Table,
    *,
    key: Any,
    expected_version: int,
    values: Mapping[str, Any],
) -> None:
    """Write `values` (which include the new `version`) only if the row is still at `expected`."""
    update_if_current = _versioned_update(table, tuple(sorted(values)))
    status = await update_if_current.execute(
        connection, **values, _key=key, _expected=expected_version
    )
    if status != "UPDATE 1":
        raise StaleVersion(f"{table.name} {key} is no longer at version {expected_version}")


@functools.cache
def _versioned_update(table: Table, columns: tuple[str, ...]) -> HotQuery:
    """One statement per table and set of columns, built once and run on the driver: building
    and executing a statement through SQLAlchemy on every save cost more than the database's
    work (see README Performance)."""
    return HotQuery(
        update(table)
        .where(table.c.id == bindparam("_key"), table.c.version == bindparam("_expected"))
        .values({name: bindparam(name) for name in columns})
    )


async def apply_if_newer(
    connection: AsyncConnection,
    table: Table,
    *,
    key: Any,
    version: int,
    groups: Mapping[str, Mapping[str, Any]],
) -> None:
    """Upsert each group of fields (keyed by its version column) if `version` is newer for it.

    Groups absent from `groups` are left as they are (or at their defaults on first insert).
    """
    excluded = insert(table).excluded
    row: dict[str, Any] = {"id": key, "version": version}
    assignments: dict[str, Any] = {"version": func.greatest(table.c.version, excluded.version)}
    for version_column, fields in groups.items():
        row[version_column] = version
        row.update(fields)
        newer = excluded[version_column] > table.c[version_column]
        assignments[version_column] = func.greatest(
            table.c[version_column], excluded[version_column]
        )
        for name in fields:
            column: Column[Any] = table.c[name]
            assignments[name] = case((newer, excluded[name]), else_=column)
    await connection.execute(
        insert(table).values(row).on_conflict_do_update(index_elements=["id"], set_=assignments)
    )
