"""Database plumbing shared by the services: engine, database creation, readiness, migrations.

Services keep their own database; these helpers only know how to reach *a* PostgreSQL database
from its SQLAlchemy URL. Migrations run in a worker thread because Alembic's async env calls
`asyncio.run`, which cannot nest inside the service's (or a test's) running loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from tenacity import before_sleep_log, retry, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)


# A statement that takes longer is cancelled and fails like any other database error (retried by
# the consumer, 503 over HTTP): a stalled network path must not hold a request or a message
# for as long as TCP takes to give up.
COMMAND_TIMEOUT_SECONDS = 30.0
POOL_TIMEOUT_SECONDS = 10.0


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """A fixed pool: a burst waits for a connection (up to `POOL_TIMEOUT_SECONDS`, then 503)
    instead of opening and closing overflow connections, which cost more than the queries.

    No pre-ping: it would cost a round trip on every checkout, doubling the cost of a
    one-statement read. A connection the server dropped fails its next statement instead, and
    SQLAlchemy then recycles the whole pool, so a database restart costs one failed request
    (answered 503, retryable) or one retried message per process, not one per connection."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"command_timeout": COMMAND_TIMEOUT_SECONDS, "timeout": 10},
    )


class HotQuery:
    """A Core statement run on the pooled connection's asyncpg driver directly, for the
    statements on the hottest paths.

    The statement is written (and type-checked) in Core like every other, compiled once to the
    SQL asyncpg runs, and asyncpg prepares it once per connection. What is skipped is
    SQLAlchemy's execution layer (cache lookup, execution context, result processing), which
    costs more than the query itself on a single-row statement: about 250 us against 150 us
    for the round trip (see README Performance). Rows come back as asyncpg records.

    On a connection in a transaction the statement runs inside it, as it would through
    SQLAlchemy (see `_driver`). Every value comes from a named `bindparam`, passed by name.
    """

    def __init__(self, statement: ClauseElement) -> None:
        dialect = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self._names = compiled.positiontup or []

    async def fetchrow(self, connection: AsyncConnection, **params: Any) -> asyncpg.Record | None:
        driver = await _driver(connection)
        return await driver.fetchrow(self.sql, *(params[name] for name in self._names))

    async def fetch(self, connection: AsyncConnection, **params: Any) -> list[asyncpg.Record]:
        driver = await _driver(connection)
        rows: list[asyncpg.Record] = await driver.fetch(
            self.sql, *(params[name] for name in self._names)
        )
        return rows

    async def executemany(
        self, connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run it once per row, pipelined by asyncpg in one round trip, in order."""
        driver = await _driver(connection)
        await driver.executemany(
            self.sql, [tuple(row[name] for name in self._names) for row in rows]
        )

    async def execute(self, connection: AsyncConnection, **params: Any) -> str:
        """Run it for its effect; the driver's status line, e.g. `UPDATE 1`."""
        driver = await _driver(connection)
        status: str = await driver.execute(self.sql, *(params[name] for name in self._names))
        return status


async def _driver(connection: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `connection`, inside its transaction if it has begun one.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it runs itself;
    a statement run on the driver first would otherwise run outside the transaction and
    survive its rollback. So the adapter is asked to begin now (a method without a public
    equivalent; `tests/integration/test_inbox.py` and `test_unit_of_work.py` roll back
    driver-level writes and would catch a change).
    """
    sync = connection.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        # Checked out already: a plain attribute, without the greenlet hop (a third of the
        # cost of a single-row statement) that `get_raw_connection` makes in case it must
        # reconnect.
        raw = sync.connection
    else:
        raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    if connection.in_transaction() and not driver.is_in_transaction():
        await raw.dbapi_connection._start_transaction()  # type: ignore[union-attr]
    return driver


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg wants, from a `postgresql+asyncpg://` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@retry(
    stop=stop_after_delay(60),
    wait=wait_exponential(multiplier=0.2, max=5),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)
async def ensure_database(url: str) -> None:
    """Create the database named in `url` if it is missing, waiting for the server to be up."""
    target = make_url(url)
    admin = asyncpg_dsn(str(target.set(database="postgres")))
    connection = await asyncpg.connect(admin)
    try:
        exists = await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        )
        if not exists:
            quoted = '"' + (target.database or "").replace('"', '""') + '"'
            try:
                await connection.execute(f"CREATE DATABASE {quoted}")
            except asyncpg.DuplicateDatabaseError:
                pass  # another replica created it between our check and our CREATE
            else:
                log.info("created database %s", target.database)
    finally:
        await connection.close()


async def drop_database(url: str) -> None:
    target = make_url(url)
    connection = await asyncpg.connect(asyncpg_dsn(str(target.set(database="postgres"))))
    try:
        quoted = '"' + (target.database or "").replace('"', '""') + '"'
        await connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await connection.close()


def alembic_config(package: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files(package) / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def migrate(package: str, url: str) -> None:
    """Bring the service's database to the latest revision (idempotent, safe for replicas)."""
    await asyncio.to_thread(command.upgrade, alembic_config(package, url), "head")
