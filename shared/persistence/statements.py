"""Core statements compiled once for asyncpg, and run with their parameters by name.

A statement is built (and type-checked) with SQLAlchemy Core where it is defined, compiled once
to the SQL asyncpg runs, and prepared by asyncpg once per connection. Running it costs the
driver's work and the round trip, nothing more: no execution context, no result processing
(see docs/design/performance.md for what that saved).

A value that varies comes from a named `bindparam`, passed by name when the statement runs; a
value written into the statement is sent with it. Parameters that expand at execution time
(`in_()` with a list) have no place in a statement compiled once: use
`= any_(bindparam(..., type_=ARRAY(...)))` for a list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]


class Statement:
    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self._names: Sequence[str] = compiled.positiontup or []
        # Values written into the statement itself (`status == "pending"`, `.limit(1)`) are
        # parameters too once compiled: they travel with every run unless given by name.
        self._constants = {
            name: bind.value for name, bind in compiled.binds.items() if not bind.required
        }

    def _arguments(self, params: Mapping[str, Any]) -> list[Any]:
        constants = self._constants
        return [params[name] if name in params else constants[name] for name in self._names]

    async def fetch(self, connection: asyncpg.Connection, **params: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await connection.fetch(self.sql, *self._arguments(params))
        return rows

    async def fetchrow(
        self, connection: asyncpg.Connection, **params: Any
    ) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await connection.fetchrow(self.sql, *self._arguments(params))
        return row

    async def fetchval(self, connection: asyncpg.Connection, **params: Any) -> Any:
        return await connection.fetchval(self.sql, *self._arguments(params))

    async def execute(self, connection: asyncpg.Connection, **params: Any) -> str:
        """Run it for its effect; the server's status line, e.g. `UPDATE 1`."""
        status: str = await connection.execute(self.sql, *self._arguments(params))
        return status

    async def executemany(
        self, connection: asyncpg.Connection, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run it once per row, pipelined by asyncpg in one round trip, in order."""
        await connection.executemany(self.sql, [self._arguments(row) for row in rows])
