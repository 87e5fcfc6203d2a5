"""Baseline `faststream_consume_pg_eps`: the same work as a FastStream RabbitMQ subscriber.

Written the way FastStream's documentation shows it: a `RabbitBroker`, a subscriber on a
`RabbitQueue` declared as a quorum queue, concurrency set with the subscriber channel's
`prefetch_count` (FastStream's knob for RabbitMQ), and the default acknowledgement policy (ack
after the handler returns, reject if it raises). The handler takes the asyncpg pool from the
closure, as a dependency would give it.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitMessage, RabbitQueue

from bench.baselines.consume_common import INSERT, QUEUE, pool, prepare


async def measure(
    database_url: str, amqp_url: str, *, messages: int, prefetch: int, pool_size: int, window: int
) -> float:
    """One repetition: events per second from the first delivery to the last handled."""
    await prepare(database_url, amqp_url, messages=messages, window=window)
    connections = await pool(database_url, pool_size)
    done = asyncio.Event()
    handled = 0
    started = 0.0
    broker = RabbitBroker(amqp_url, logger=None)

    @broker.subscriber(
        RabbitQueue(QUEUE, queue_type=QueueType.QUORUM, durable=True),
        channel=Channel(prefetch_count=prefetch),
    )
    async def on_order_created(body: bytes, message: RabbitMessage) -> None:
        nonlocal handled, started
        if not started:
            started = time.perf_counter()
        async with connections.acquire() as connection, connection.transaction():
            await connection.execute(
                INSERT, uuid.UUID(message.message_id), message.raw_message.type
            )
        handled += 1
        if handled == messages:
            done.set()

    try:
        await broker.start()
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
    finally:
        await broker.stop()
        await connections.close()
    return messages / elapsed
