"""`consumer_eps` and the inbox growth figure: `shared.messaging.consumer.EventConsumer` with
user_svc's real handlers, unit of work and tables, over pre-published order.created events.

Wired as `shared.runtime.parts.Consumer` wires it, with the service's default prefetch and attempt
limit. The events are spread over many existing users with ample credit, so each one takes the
full path: validate, claim in the inbox, lock and version-check the user, reserve the credit,
write the `user.credit_reserved` outbox row, commit, ack.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import aio_pika
import asyncpg

from bench.amqp import publish_pipelined, wait_for_depth
from bench.messages import ORDER_CREATED, amqp_message, order_created
from broker.topology import USER_SVC_QUEUE, declare
from shared.messaging.consumer import EventConsumer
from shared.messaging.envelope import encode
from shared.observability.metrics import Metrics
from shared.persistence.database import Database, dsn
from shared.settings import ServiceSettings
from user_svc.app import SPEC
from user_svc.models import inbox

PREFETCH: int = ServiceSettings.model_fields["consumer_prefetch"].default
MAX_ATTEMPTS: int = ServiceSettings.model_fields["handler_max_attempts"].default
BATCH_SIZE: int = ServiceSettings.model_fields["consumer_batch_size"].default
CREDIT_LIMIT = 10**15


async def add_users(database_url: str, count: int) -> list[uuid.UUID]:
    """`count` active users with credit for any number of orders (written as registration would)."""
    ids = [uuid.uuid4() for _ in range(count)]
    records = [
        (i, f"bench-{i.hex}@example.com", "Bench User", "not-a-hash", "active", CREDIT_LIMIT, 0, 1)
        for i in ids
    ]
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.copy_records_to_table(
            "users",
            records=records,
            columns=[
                "id",
                "email",
                "name",
                "password_hash",
                "status",
                "credit_limit",
                "credit_reserved",
                "version",
            ],
        )
        await connection.execute("ANALYZE users")
    finally:
        await connection.close()
    return ids


async def fill_inbox(database_url: str, rows: int) -> None:
    """`rows` earlier events already processed by this consumer: a week of inbox history."""
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.execute(
            "INSERT INTO inbox (consumer, event_id, event_type) "
            "SELECT $1, gen_random_uuid(), $2 FROM generate_series(1, $3)",
            USER_SVC_QUEUE.name,
            ORDER_CREATED,
            rows,
        )
        await connection.execute("VACUUM ANALYZE inbox")
    finally:
        await connection.close()


async def publish_orders(
    amqp_url: str, users: list[uuid.UUID], *, messages: int, window: int
) -> None:
    """Put `messages` order.created events for `users` (round robin) into user_svc's queue."""
    bodies = [
        encode(order_created(order_id=uuid.uuid4(), user_id=user))
        for user, _ in zip(itertools.cycle(users), range(messages), strict=False)
    ]
    amqp = await aio_pika.connect(amqp_url)
    async with amqp:
        channel = await amqp.channel(publisher_confirms=True)
        await declare(channel)
        await channel.declare_queue(USER_SVC_QUEUE.name, passive=True)
        # Straight into the queue (the default exchange): through `events` every copy would
        # also reach inventory_svc's queue, where nothing consumes it in this measurement.
        await publish_pipelined(
            channel.default_exchange,
            ((USER_SVC_QUEUE.name, amqp_message(uuid.uuid4(), body)) for body in bodies),
            window=window,
        )
        await wait_for_depth(channel, USER_SVC_QUEUE.name, messages)


async def consume(database_url: str, amqp_url: str, *, messages: int) -> float:
    """Run the consumer over the waiting events; seconds until `messages` were applied."""
    database = Database(database_url)
    metrics = Metrics()
    consumer = EventConsumer(
        queue=USER_SVC_QUEUE,
        handlers=SPEC.handlers,
        unit_of_work=lambda: SPEC.unit_of_work(database),
        inbox_table=inbox,
        metrics=metrics,
        prefetch=PREFETCH,
        max_attempts=MAX_ATTEMPTS,
        batch_size=BATCH_SIZE,
    )
    amqp = await aio_pika.connect_robust(amqp_url)
    try:
        await open_connections(database, PREFETCH // BATCH_SIZE)
        started = time.perf_counter()
        await consumer.start(amqp)
        while (settled := _settled(metrics)) < messages:
            if _applied(metrics) < settled:
                raise RuntimeError("some order.created events were not applied: see the DLQ")
            if time.perf_counter() - started > 600:
                raise TimeoutError(f"applied {settled} of {messages} events in 600 s")
            # Reading the counter costs the consumer's own CPU: often enough for a 1% resolution.
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        await consumer.stop()
    finally:
        await amqp.close()
        await database.close()
    if _applied(metrics) != messages:
        raise RuntimeError(f"applied {_applied(metrics)} of {messages} events")
    return elapsed


async def open_connections(database: Database, count: int) -> None:
    """Open as many connections of the pool as the consumer's workers hold at once, before the
    clock starts, as the baselines open their pools: the first batches would otherwise pay for
    opening them, a share of the figure that grows as the run shrinks."""
    held = asyncio.Barrier(count)

    async def hold() -> None:
        async with database.connection():
            await held.wait()

    await asyncio.gather(*(hold() for _ in range(count)))


def _applied(metrics: Metrics) -> float:
    return _count(metrics, "applied")


def _settled(metrics: Metrics) -> float:
    return sum(_count(metrics, o) for o in ("applied", "duplicate", "retried", "dead_lettered"))


def _count(metrics: Metrics, outcome: str) -> float:
    """One counter of the consumer's own metrics (collecting only it, not the whole registry)."""
    for family in metrics.messages_consumed.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels == {
                "type": ORDER_CREATED,
                "outcome": outcome,
            }:
                return float(sample.value)
    return 0.0


async def measure(
    database_url: str,
    amqp_url: str,
    users: list[uuid.UUID],
    *,
    messages: int,
    window: int,
) -> float:
    """One repetition: events per second applied by our consumer."""
    await publish_orders(amqp_url, users, messages=messages, window=window)
    return messages / await consume(database_url, amqp_url, messages=messages)
