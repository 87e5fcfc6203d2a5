"""`relay_eps` and the outbox-drain growth figure: `shared.messaging.relay.OutboxRelay` draining a
pre-filled outbox of a real, migrated order_svc database into the real topology (quorum queues).

The relay is wired exactly as `shared.runtime.parts.Relay` wires it (same database pool, batch size
and exchange) and driven through `publish_pending`, its claim, publish, confirm and mark loop.
The LISTEN/NOTIFY wake-up and poll timer are left out: with a backlog waiting they add nothing.
"""

from __future__ import annotations

import time
import uuid

import aio_pika
import asyncpg

from bench.amqp import purge_routed
from bench.messages import ORDER_CREATED, order_created_body
from broker.topology import TOPOLOGY, declare
from order_svc.models import outbox
from shared.messaging.relay import OutboxRelay
from shared.observability.metrics import Metrics
from shared.persistence.database import Database, dsn
from shared.settings import ServiceSettings

BATCH_SIZE: int = ServiceSettings.model_fields["relay_batch_size"].default
POLL_SECONDS: float = ServiceSettings.model_fields["relay_poll_seconds"].default


async def fill_outbox(database_url: str, rows: int) -> None:
    """Append `rows` unpublished order.created rows, as committed orders would have left them."""
    records = []
    for _ in range(rows):
        event_id, body = order_created_body()
        records.append((event_id, ORDER_CREATED, str(uuid.uuid4()), body))
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.copy_records_to_table(
            "outbox", records=records, columns=["id", "type", "subject", "body"]
        )
        # What autovacuum would have done by the time such a backlog exists.
        await connection.execute("ANALYZE outbox")
    finally:
        await connection.close()


async def drain(database_url: str, amqp_url: str, *, rows: int) -> float:
    """Fill the outbox with `rows` events and return the seconds the relay takes to publish all."""
    await fill_outbox(database_url, rows)
    database = Database(database_url)
    amqp = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await amqp.channel()
        await declare(channel)
        relay = OutboxRelay(
            database=database,
            outbox=outbox,
            amqp=amqp,
            exchange=TOPOLOGY.exchange.name,
            metrics=Metrics(),
            batch_size=BATCH_SIZE,
            poll_seconds=POLL_SECONDS,
        )
        started = time.perf_counter()
        published = await relay.publish_pending()
        elapsed = time.perf_counter() - started
        if published != rows:
            raise RuntimeError(f"the relay published {published} of {rows} outbox rows")
        await purge_routed(channel, ORDER_CREATED)
    finally:
        await amqp.close()
        await database.close()
    return elapsed


async def measure(database_url: str, amqp_url: str, *, messages: int) -> float:
    """One repetition: events per second of draining `messages` outbox rows."""
    return messages / await drain(database_url, amqp_url, rows=messages)
