"""The services' clients find their servers again after a failure, on private servers.

- A multi-host database URL reaches whichever server takes writes: before a failover, after
  it, for the pool, the relay's LISTEN connection, database creation and migrations.
- A pooled connection to a server that stopped taking writes is dropped, not handed out again.
- The relay LISTENs again on the promoted standby: notifications are not replicated.
- The relay publishes again at once when a quorum queue's leader dies under it.
- An AMQP connection notices a broker that went silent within 15 seconds (heartbeats).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import asyncpg
import pytest
from sqlalchemy import bindparam, column, insert, table

from broker.topology import TOPOLOGY, declare
from shared.messaging.amqp import with_heartbeat
from shared.messaging.relay import OutboxRelay
from shared.observability.metrics import Metrics
from shared.persistence.database import (
    UNAVAILABLE,
    Database,
    database_name,
    drop_database,
    dsn,
    ensure_database,
)
from shared.persistence.migrations import migrate
from shared.persistence.statements import Statement
from tests.support.proxy import TcpProxy
from tests.support.servers.commands import CommandFailed
from tests.support.servers.postgres import PostgresNode, PostgresPair
from tests.support.servers.rabbitmq import RabbitCluster
from tests.support.waiting import eventually
from user_svc import models
from user_svc.domain import User
from user_svc.uow import unit_of_work

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVER_PORT = "SELECT inet_server_port()"
BACKEND = "SELECT pg_backend_pid()"
SILENCE_NOTICED_WITHIN_SECONDS = 15


@pytest.fixture
def pair(private_postgres_pair: PostgresPair) -> Iterator[PostgresPair]:
    """The session's pair, left with a synchronous standby again after the test."""
    yield private_postgres_pair
    private_postgres_pair.make_whole()


@pytest.fixture
async def user_db(pair: PostgresPair) -> AsyncIterator[str]:
    """A user_svc database of the test's own on the pair, created and migrated through the
    multi-host URL."""
    url = pair.url(f"user_svc_{uuid.uuid4().hex[:8]}")
    await ensure_database(url)
    await migrate("user_svc", url)
    yield url
    await asyncio.to_thread(pair.make_whole)
    await drop_database(url)


@pytest.fixture
async def database(user_db: str) -> AsyncIterator[Database]:
    database = Database(user_db, pool_size=4)
    yield database
    await database.close()


async def served_by(database: Database) -> int:
    """The port of the server a new statement runs on (retried through a failover's errors)."""

    async def port() -> int | None:
        try:
            async with database.connection() as connection:
                return int(await connection.fetchval(SERVER_PORT))
        except UNAVAILABLE:
            return None

    return await eventually(port, timeout=30, what="a database connection")


def test_the_dsn_lists_every_server_of_a_multi_host_url(pair: PostgresPair) -> None:
    first, second = pair.primary, pair.standby
    assert second is not None
    assert dsn(pair.url("db")) == (
        f"postgresql://postgres@127.0.0.1:{first.port},127.0.0.1:{second.port}/db"
        "?target_session_attrs=read-write"
    )


async def test_database_creation_and_migrations_reach_the_primary_and_replicate(
    pair: PostgresPair, user_db: str
) -> None:
    standby = pair.standby
    assert standby is not None

    async def replayed() -> bool:
        """A synchronous standby has the commit's WAL once the primary returns, but replays it a
        moment later: the database, then the migration, become visible there within the
        deadline, not at once."""
        try:
            tables = await asyncio.to_thread(
                standby.sql,
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'users'",
                database_name(user_db),
            )
        except CommandFailed:  # the database itself is not replayed yet
            return False
        return tables == "1"

    await eventually(replayed, timeout=30, what="the users table on the standby")


async def test_the_pool_writes_to_the_promoted_standby_after_a_failover(
    pair: PostgresPair, database: Database
) -> None:
    assert await served_by(database) == pair.primary.port

    promoted = await asyncio.to_thread(pair.fail_over)

    assert await served_by(database) == promoted.port
    await register(database)


async def test_pooled_connections_to_the_failed_primary_are_replaced_before_use(
    pair: PostgresPair, database: Database
) -> None:
    """The driver saw the old primary close their sockets: no statement is tried on them."""
    async with database.connection() as connection:
        await connection.fetchval(BACKEND)  # one connection in the pool, to the primary

    await asyncio.to_thread(pair.fail_over)
    await eventually(lambda: accepts_writes(pair.primary), what="the promoted standby")

    async with database.connection() as connection:
        assert await connection.fetchval(SERVER_PORT) == pair.primary.port


async def test_a_statement_on_a_connection_lost_under_it_fails_as_unavailable_and_is_not_reused(
    pair: PostgresPair, database: Database
) -> None:
    """A connection lost after it was handed out: an error the HTTP edge answers with 503 and
    the consumer retries, and the pool does not hand that connection out again."""
    lost: list[int] = []

    async def statement_on_a_lost_connection() -> None:
        async with database.transaction() as connection:
            lost.append(connection.get_server_pid())
            pair.primary.sql(f"SELECT pg_terminate_backend({lost[0]})")
            await eventually(lambda: asyncio.sleep(0, connection.is_closed()), what="the loss seen")
            await connection.fetchval("SELECT 1")

    with pytest.raises(UNAVAILABLE):
        await statement_on_a_lost_connection()
    async with database.transaction() as connection:
        assert connection.get_server_pid() not in lost
        assert await connection.fetchval("SELECT 1") == 1


async def test_the_relay_listens_again_on_the_promoted_standby(
    pair: PostgresPair, database: Database, amqp_url: str
) -> None:
    """The relay polls once a minute here: only a notification publishes within the deadline."""
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel()
        await declare(channel, TOPOLOGY)
        observer = await channel.declare_queue(exclusive=True, auto_delete=True)
        await observer.bind(TOPOLOGY.exchange.name, routing_key="#")
        relay = relay_on(database, connection)
        running = asyncio.create_task(relay.run())
        try:
            await eventually(lambda: listening(pair.primary), what="LISTEN on the primary")
            await asyncio.to_thread(pair.fail_over)
            await eventually(lambda: listening(pair.primary), what="LISTEN on the new primary")
            await register(database)
            await eventually(
                lambda: observer.get(no_ack=True, fail=False), timeout=10, what="the event"
            )
        finally:
            relay.stop()
            await asyncio.wait_for(running, 10)


async def test_a_connection_to_a_server_fenced_read_only_is_not_reused(
    private_postgres: PostgresNode,
) -> None:
    """An operator fences the primary (`default_transaction_read_only`) before a switchover:
    writes fail, and the connection that saw it is dropped instead of handed out again."""
    url = f"{private_postgres.base_url()}/fenced_{uuid.uuid4().hex[:8]}"
    await ensure_database(url)
    database = Database(url, pool_size=1)
    write = Statement(insert(table("notes", column("n"))).values(n=bindparam("n")))
    try:
        async with database.transaction() as connection:
            await connection.execute("CREATE TABLE notes (n int)")
            before = await connection.fetchval(BACKEND)
        await asyncio.to_thread(fence, private_postgres, "on")

        async def fenced() -> bool:
            # A reload reaches each backend between two of its commands, not at once.
            async with database.connection() as connection:
                return await connection.fetchval("SHOW default_transaction_read_only") == "on"

        try:
            await eventually(fenced, timeout=10, what="the pooled connection fenced")
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                async with database.transaction() as connection:
                    await write.execute(connection, n=1)
        finally:
            await asyncio.to_thread(fence, private_postgres, "off")
        async with database.transaction() as connection:
            assert await connection.fetchval(BACKEND) != before
            await write.execute(connection, n=1)
    finally:
        await database.close()


@pytest.fixture
def cluster(private_rabbit_cluster: RabbitCluster) -> Iterator[RabbitCluster]:
    """The session's cluster, every member running in it again after the test."""
    yield private_rabbit_cluster
    private_rabbit_cluster.make_whole()


@pytest.fixture
def cluster_vhost(cluster: RabbitCluster) -> Iterator[str]:
    """A vhost of the test's own on the cluster, removed once the cluster is whole again."""
    vhost = f"relay-{uuid.uuid4().hex[:8]}"
    cluster.nodes[0].add_vhost(vhost)
    yield vhost
    cluster.make_whole()
    cluster.nodes[0].ctl("delete_vhost", vhost)


async def test_the_relay_publishes_again_at_once_when_its_queues_leader_dies(
    cluster: RabbitCluster, cluster_vhost: str, database: Database
) -> None:
    """Its first publish after the kill meets the queue between two leaders, and is refused;
    the next batch goes out on a new channel, which the new leader serves."""
    leader, follower = cluster.nodes[0], cluster.nodes[1]
    vhost = cluster_vhost
    async with await aio_pika.connect(leader.url(vhost)) as declaring:
        await declare(await declaring.channel(), TOPOLOGY)  # the leaders land on `leader`
    connection = await aio_pika.connect_robust(follower.url(vhost))
    async with connection:
        relay = relay_on(database, connection)
        await register(database)
        await asyncio.to_thread(leader.kill)
        try:
            with pytest.raises(RuntimeError, match="not confirmed"):
                await relay.publish_pending()

            async def published() -> int | None:
                try:
                    return await relay.publish_pending() or None
                except RuntimeError:
                    return None  # still between leaders

            assert await eventually(published, timeout=10, what="the event published") == 1
        finally:
            await asyncio.to_thread(leader.start)
            await asyncio.to_thread(cluster.wait_until_formed)


async def test_a_silent_broker_is_noticed_within_fifteen_seconds(amqp_url: str) -> None:
    proxy = TcpProxy(5672)
    await proxy.start()
    silent = asyncio.Event()
    try:
        through_proxy = amqp_url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
        connection = await aio_pika.connect(with_heartbeat(through_proxy))
        connection.close_callbacks.add(lambda *_: silent.set())
        stall = asyncio.create_task(proxy.stall(SILENCE_NOTICED_WITHIN_SECONDS + 10))
        started = time.monotonic()

        await asyncio.wait_for(silent.wait(), SILENCE_NOTICED_WITHIN_SECONDS)

        assert time.monotonic() - started < SILENCE_NOTICED_WITHIN_SECONDS
        stall.cancel()
    finally:
        await proxy.close()


async def accepts_writes(node: PostgresNode) -> bool:
    return await asyncio.to_thread(node.sql, "SELECT pg_is_in_recovery()") == "f"


def fence(node: PostgresNode, read_only: str) -> None:
    node.sql(f"ALTER SYSTEM SET default_transaction_read_only = {read_only}")
    node.sql("SELECT pg_reload_conf()")


async def listening(node: PostgresNode) -> bool:
    rows = await asyncio.to_thread(
        node.sql, "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'LISTEN %outbox%'"
    )
    return rows != "0"


def relay_on(database: Database, amqp: aio_pika.abc.AbstractConnection) -> OutboxRelay:
    return OutboxRelay(
        database=database,
        outbox=models.outbox,
        amqp=amqp,
        exchange=TOPOLOGY.exchange.name,
        metrics=Metrics(),
        batch_size=100,
        poll_seconds=60.0,
    )


async def register(database: Database) -> None:
    async with unit_of_work(database) as uow:
        suffix = uuid.uuid4().hex[:10]
        user = User.register(
            id=uuid.uuid4(), email=f"{suffix}@example.com", name="Ada", credit_limit=1_000
        )
        assert await uow.users.add(user, password_hash="not-a-real-hash")
        await uow.commit()
