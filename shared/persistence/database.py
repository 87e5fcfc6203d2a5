"""The service's connection pool, and how to tell "the database is unavailable" from a bug.

Connections are opened lazily: a process starts, and answers `/readyz` with 503, while its
database is still down, and a burst waits for a free connection (up to `POOL_TIMEOUT_SECONDS`)
instead of opening more than the pool allows. A connection the server dropped fails its next
statement and is discarded by the pool on release, so a restart or a failover costs each
connection one failed statement, never a stuck process.

The URL is the contract's SQLAlchemy form (`postgresql+asyncpg://...`). It may name several
servers, a primary and its standbys, in SQLAlchemy's multi-host form
(`postgresql+asyncpg://user@/db?host=h1:5432&host=h2:5432&target_session_attrs=read-write`):
every new connection then goes to whichever of them accepts writes, so after a failover the
services find the promoted standby by themselves. Every path takes the same URL: the pool, the
relay's LISTEN connection, database creation and Alembic's migrations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.engine import make_url
from tenacity import before_sleep_log, retry, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)

# A statement that takes longer is cancelled and fails like any other database error (retried
# by the consumer, 503 over HTTP): a stalled network path must not hold a request or a message
# for as long as TCP takes to give up.
COMMAND_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
POOL_TIMEOUT_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 2.0

# Failures that say the database cannot be reached or cannot take writes right now, as opposed
# to a bug or a constraint: a request answers 503 and may be retried, a message is retried.
UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # no connection free in time, a statement over its timeout
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, starting up
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby now, after a failover
    asyncpg.InterfaceError,  # the connection was closed under the statement
)


# Errors after which a connection must not be used again, though it is still open: its server
# no longer takes writes (a standby, or a primary an operator fenced read-only before a
# switchover: 25006), or is shutting down or starting up (57P01-57P03).
STALE_SERVER_SQLSTATES = frozenset({"25006", "57P01", "57P02", "57P03"})

_DIALECT = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]


def dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes, from the contract's `postgresql+asyncpg://` URL.

    A multi-host URL's servers, given as `host` parameters there, go into the DSN's host list
    (`postgresql://user@h1:5432,h2:5432/db?target_session_attrs=read-write`), read as
    SQLAlchemy's own dialect reads them, so migrations and the services reach the same
    servers."""
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


def with_database(url: str, name: str) -> str:
    """The same server(s) and options, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def without_password(url: str) -> str:
    """The URL as it may be logged."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    user = credentials.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}{at}{hosts}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


class Database:
    """A pool of connections to one service's database."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = url
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._creating = asyncio.Lock()

    async def _opened(self) -> asyncpg.Pool:
        """The pool, created on first use inside the running event loop. It opens no
        connection until one is needed, so creating it never waits for the server."""
        if self._pool is not None:
            return self._pool
        async with self._creating:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    dsn(self.url),
                    min_size=0,
                    max_size=self._pool_size,
                    command_timeout=COMMAND_TIMEOUT_SECONDS,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    reset=_reset,
                )
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of the pool for the duration of the block.

        The pool replaces a connection the server closed (a restart, a failover) when it is
        next handed out, at no cost: the driver saw the socket close. A connection whose server
        stopped taking writes is still open, so it is closed here, on the error that says so,
        and its replacement goes to whichever server now takes writes."""
        pool = await self._opened()
        async with pool.acquire(timeout=POOL_TIMEOUT_SECONDS) as connection:
            try:
                yield connection
            except asyncpg.PostgresError as error:
                if error.sqlstate in STALE_SERVER_SQLSTATES:
                    connection.terminate()
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a transaction that commits if the block ends normally."""
        async with self.connection() as connection, connection.transaction():
            yield connection

    async def ping(self) -> bool:
        """Whether a statement runs now (readiness)."""
        try:
            async with asyncio.timeout(PING_TIMEOUT_SECONDS), self.connection() as connection:
                await connection.fetchval("SELECT 1")
        except Exception:
            return False
        return True


@retry(
    stop=stop_after_delay(60),
    wait=wait_exponential(multiplier=0.2, max=5),
    before_sleep=before_sleep_log(log, logging.WARNING),
    reraise=True,
)
async def ensure_database(url: str) -> None:
    """Create the database named in `url` if it is missing, waiting for the server to be up."""
    name = database_name(url)
    connection = await asyncpg.connect(dsn(with_database(url, "postgres")))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await connection.execute(f"CREATE DATABASE {_quoted(name)}")
            except asyncpg.DuplicateDatabaseError:
                pass  # another replica created it between our check and our CREATE
            else:
                log.info("created database %s", name)
    finally:
        await connection.close()


async def drop_database(url: str) -> None:
    connection = await asyncpg.connect(dsn(with_database(url, "postgres")))
    try:
        name = _quoted(database_name(url))
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await connection.close()


async def _reset(connection: asyncpg.Connection) -> None:
    """What a connection returning to the pool may carry over: only a transaction left open.

    asyncpg's default reset also unlistens, unlocks advisory locks, closes cursors and resets
    settings, in a round trip on every release. Pooled connections here never take any of
    those (the relay listens on a connection of its own, migrations lock on theirs), so that
    round trip would buy nothing.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
