"""Replicas of another service's aggregates, versioned by PostgreSQL: *versions gate state
copies*.

Each group of fields remembers the version it was last written at, and an `INSERT .. ON
CONFLICT DO UPDATE` takes a group's new values only when the event's version is newer than that
group's. Events that carry only part of the state (a rename, a deactivation) therefore converge
to the in-order result under any reordering or duplication; the row's own `version` is the
highest version applied. (A service's own aggregates are versioned where they are written back,
`shared.persistence.held_rows`: `WHERE version = :expected`.)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy import Column, Table, bindparam, case, func
from sqlalchemy.dialects.postgresql import insert

from shared.persistence.statements import Statement


async def apply_if_newer(
    connection: asyncpg.Connection,
    table: Table,
    *,
    key: Any,
    version: int,
    groups: Mapping[str, Mapping[str, Any]],
) -> None:
    """Upsert each group of fields (keyed by its version column) if `version` is newer for it.

    Groups absent from `groups` are left as they are (or at their defaults on first insert).
    """
    shape = tuple((version_column, tuple(fields)) for version_column, fields in groups.items())
    values: dict[str, Any] = {"id": key, "version": version}
    for version_column, fields in groups.items():
        values[version_column] = version
        values.update(fields)
    await _upsert_if_newer(table, shape).execute(connection, **values)


@functools.cache
def _upsert_if_newer(table: Table, shape: tuple[tuple[str, tuple[str, ...]], ...]) -> Statement:
    """One statement per table and shape of groups (which version columns, which fields)."""
    excluded = insert(table).excluded
    names = ["id", "version"]
    assignments: dict[str, Any] = {"version": func.greatest(table.c.version, excluded.version)}
    for version_column, fields in shape:
        names.extend((version_column, *fields))
        newer = excluded[version_column] > table.c[version_column]
        assignments[version_column] = func.greatest(
            table.c[version_column], excluded[version_column]
        )
        for name in fields:
            column: Column[Any] = table.c[name]
            assignments[name] = case((newer, excluded[name]), else_=column)
    return Statement(
        insert(table)
        .values({name: bindparam(name, type_=table.c[name].type) for name in names})
        .on_conflict_do_update(index_elements=["id"], set_=assignments)
    )
