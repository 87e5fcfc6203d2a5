"""Baseline `raw_publish_eps`: plain aio-pika publishing persistent order.created-sized messages
with publisher confirms, pipelined, through a topic exchange into one quorum queue.

The exchange hop is kept because the relay publishes through the `events` topic exchange too:
only the mechanism around the publish differs, not the route.
"""

from __future__ import annotations

import time

import aio_pika

from bench.amqp import publish_pipelined, quorum_queue
from bench.messages import ORDER_CREATED, amqp_message, order_created_body

EXCHANGE = "bench.raw_publish"
QUEUE = "bench.raw_publish"


async def measure(amqp_url: str, *, messages: int, window: int) -> float:
    """One repetition: events per second from the first publish to the last confirm."""
    bodies = [order_created_body() for _ in range(messages)]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await quorum_queue(channel, QUEUE)
        await queue.bind(exchange, ORDER_CREATED)
        started = time.perf_counter()
        await publish_pipelined(
            exchange,
            ((ORDER_CREATED, amqp_message(event_id, body)) for event_id, body in bodies),
            window=window,
        )
        elapsed = time.perf_counter() - started
        await queue.purge()
    return messages / elapsed
