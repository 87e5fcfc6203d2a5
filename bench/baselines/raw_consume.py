"""Baseline `raw_consume_pg_eps`: a plain aio-pika consumer with asyncpg, prefetch tuned.

Per message: one transaction inserting one row, then the ack, with `prefetch` messages in
flight at once (aio-pika runs each delivery's callback as its own task).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.baselines.consume_common import INSERT, QUEUE, pool, prepare


async def measure(
    database_url: str, amqp_url: str, *, messages: int, prefetch: int, pool_size: int, window: int
) -> float:
    """One repetition: events per second from the first delivery to the last ack."""
    await prepare(database_url, amqp_url, messages=messages, window=window)
    connections = await pool(database_url, pool_size)
    done = asyncio.Event()
    acked = 0
    started = 0.0

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal acked, started
        if not started:
            started = time.perf_counter()
        async with connections.acquire() as connection, connection.transaction():
            await connection.execute(INSERT, uuid.UUID(message.message_id), message.type)
        await message.ack()
        acked += 1
        if acked == messages:
            done.set()

    amqp = await aio_pika.connect(amqp_url)
    try:
        async with amqp:
            channel = await amqp.channel()
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.get_queue(QUEUE)
            tag = await queue.consume(on_message)
            await asyncio.wait_for(done.wait(), timeout=600)
            elapsed = time.perf_counter() - started
            await queue.cancel(tag)
    finally:
        await connections.close()
    return messages / elapsed
