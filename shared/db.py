"""Database plumbing shared by the services: engine, database creation, readiness, migrations.

Services keep their own database; these helpers only know how to reach *a* PostgreSQL database
from its SQLAlchemy URL. Migrations run in a worker thread because Alembic's async env calls
`asyncio.run`, which cannot nest inside the service's (or a test's) running loop.

The URL may name several servers, a primary and its standbys, in SQLAlchemy's multi-host form
(`postgresql+asyncpg://user@/db?host=h1:5432&host=h2:5432&target_session_attrs=read-write`):
every new connection then goes to whichever of them accepts writes, so after a failover the
services find the promoted standby by themselves. Every path here takes the same URL: the
engine, the relay's LISTEN connection (`asyncpg_dsn`), database creation and migrations.
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
from sqlalchemy import ClauseElement, event
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from tenacity import before_sleep_log, retry, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)


# A statement that takes longer is cancelled and fails like any other database error (retried by
# the consumer, 503 over HTTP): a stalled network path must not hold a request or a message
# for as long as TCP takes to give up.
COMMAND_TIMEOUT_SECONDS = 30.0
POOL_TIMEOUT_SECONDS = 10.0

# Errors after which a pooled connection must not be used again, though it is still open: its
# server no longer takes writes (a standby, or a primary an operator fenced read-only before a
# switchover: 25006), or is shutting down or starting up (57P01-57P03).
STALE_SERVER_SQLSTATES = frozenset({"25006", "57P01", "57P02", "57P03"})


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """A fixed pool: a burst waits for a connection (up to `POOL_TIMEOUT_SECONDS`, then 503)
    instead of opening and closing overflow connections, which cost more than the queries.

    No pre-ping: it would cost a round trip on every checkout, doubling the cost of a
    one-statement read. A connection the server dropped fails its next statement instead, and
    SQLAlchemy then recycles the whole pool, so a database restart costs one failed request
    (answered 503, retryable) or one retried message per process, not one per connection.
    A connection whose server stopped taking writes is treated the same way (see
    `STALE_SERVER_SQLSTATES`): the pool is recycled, and its new connections go to whichever
    server of a multi-host URL now accepts writes."""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"command_timeout": COMMAND_TIMEOUT_SECONDS, "timeout": 10},
    )
    event.listen(engine.sync_engine, "handle_error", _recycle_on_stale_server)
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection whose server went away (a restart, a failover) is replaced before
    it is handed out, and with it every connection pooled before it: the driver noticed when the
    server closed the socket, so this costs no round trip, unlike a ping. Without it, the first
    statement on each process's pool would fail after a failover, on the driver's path with an
    error SQLAlchemy never sees."""
    if dbapi_connection.driver_connection.is_closed():
        raise InvalidatePoolError("the server closed this pooled connection")


def _recycle_on_stale_server(context: ExceptionContext) -> None:
    """Count a stale server's error as a disconnect: SQLAlchemy then invalidates the connection
    and the whole pool, instead of handing the same connection out again."""
    if getattr(context.original_exception, "sqlstate", None) in STALE_SERVER_SQLSTATES:
        context.is_disconnect = True


_DIALECT = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]


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
        try:
            return await driver.fetchrow(self.sql, *(params[name] for name in self._names))
        except asyncpg.PostgresError as error:
            await _invalidate_if_stale(connection, error)
            raise

    async def fetch(self, connection: AsyncConnection, **params: Any) -> list[asyncpg.Record]:
        driver = await _driver(connection)
        try:
            rows: list[asyncpg.Record] = await driver.fetch(
                self.sql, *(params[name] for name in self._names)
            )
        except asyncpg.PostgresError as error:
            await _invalidate_if_stale(connection, error)
            raise
        return rows

    async def executemany(
        self, connection: AsyncConnection, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Run it once per row, pipelined by asyncpg in one round trip, in order."""
        driver = await _driver(connection)
        try:
            await driver.executemany(
                self.sql, [tuple(row[name] for name in self._names) for row in rows]
            )
        except asyncpg.PostgresError as error:
            await _invalidate_if_stale(connection, error)
            raise

    async def execute(self, connection: AsyncConnection, **params: Any) -> str:
        """Run it for its effect; the driver's status line, e.g. `UPDATE 1`."""
        driver = await _driver(connection)
        try:
            status: str = await driver.execute(self.sql, *(params[name] for name in self._names))
        except asyncpg.PostgresError as error:
            await _invalidate_if_stale(connection, error)
            raise
        return status


async def _invalidate_if_stale(connection: AsyncConnection, error: asyncpg.PostgresError) -> None:
    """What `_recycle_on_stale_server` does for SQLAlchemy's statements, for the driver's: a
    connection to a server that stopped taking writes is dropped, not returned to the pool."""
    if error.sqlstate in STALE_SERVER_SQLSTATES:
        await connection.invalidate(error)


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
        try:
            await raw.dbapi_connection._start_transaction()  # type: ignore[union-attr]
        except Exception as error:
            # The connection was lost under us. The adapter raised its own DBAPI class, which
            # nothing above reads; raise the driver's error, as the statement itself would
            # have, and drop the connection.
            await connection.invalidate(error)
            if isinstance(error.__cause__, asyncpg.PostgresError | asyncpg.InterfaceError):
                raise error.__cause__ from None
            raise
    return driver


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg wants, from a `postgresql+asyncpg://` URL.

    A multi-host URL's servers, given as `host` parameters there, go into the DSN's host list
    (`postgresql://user@h1:5432,h2:5432/db?target_session_attrs=read-write`), read as
    SQLAlchemy's own dialect reads them, so both drivers reach the same servers."""
    parsed = make_url(url).set(drivername="postgresql")
    _, arguments = _DIALECT.create_connect_args(parsed)  # type: ignore[no-untyped-call]
    hosts, ports = arguments.get("host"), arguments.get("port")
    if not isinstance(hosts, list) or not isinstance(ports, list):
        return parsed.render_as_string(hide_password=False)
    servers = ",".join(f"{host}:{port}" for host, port in zip(hosts, ports, strict=True))
    rest = parsed.difference_update_query(["host", "port"]).set(host=None, port=None)
    scheme, _, remainder = rest.render_as_string(hide_password=False).partition("://")
    credentials, at, path = remainder.rpartition("@")
    return f"{scheme}://{credentials}{at}{servers}{path}"


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
