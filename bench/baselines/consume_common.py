"""What the plain and FastStream consumer baselines share: their queue, table and fill step.

Both do the least work that is still a safe consumer: one transaction inserting one row keyed by
the message id, committed before the ack. Our consumer does that and more (validation, inbox,
version check, domain update, outbox row); the ratio prices the more.
"""

from __future__ import annotations

import aio_pika
import asyncpg

from bench.amqp import publish_pipelined, quorum_queue, wait_for_depth
from bench.messages import amqp_message, order_created_body
from shared.persistence.database import dsn

QUEUE = "bench.consume"
TABLE_DDL = """
CREATE TABLE IF NOT EXISTS processed (
    event_id uuid PRIMARY KEY,
    event_type text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO processed (event_id, event_type) VALUES ($1, $2)"


async def prepare(database_url: str, amqp_url: str, *, messages: int, window: int) -> None:
    """Create the table if needed and put `messages` fresh order.created messages in the queue."""
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.execute(TABLE_DDL)
    finally:
        await connection.close()
    amqp = await aio_pika.connect(amqp_url)
    async with amqp:
        channel = await amqp.channel(publisher_confirms=True)
        queue = await quorum_queue(channel, QUEUE)
        await queue.purge()
        bodies = [order_created_body() for _ in range(messages)]
        await publish_pipelined(
            channel.default_exchange,
            ((QUEUE, amqp_message(event_id, body)) for event_id, body in bodies),
            window=window,
        )
        await wait_for_depth(channel, QUEUE, messages)


async def pool(database_url: str, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn(database_url), min_size=size, max_size=size)
