"""Baseline `raw_publish_eps`: plain aio-pika publishing persistent order.created-sized messages
with publisher confirms, pipelined, through the `events` exchange into the queues the relay's
order.created events reach (user_svc's and inventory_svc's quorum queues, declared as the
services declare them): only the mechanism around the publish differs from the relay, not the
route.
"""

from __future__ import annotations

import time

import aio_pika

from bench.amqp import publish_pipelined, purge_routed
from bench.messages import ORDER_CREATED, amqp_message, order_created_body
from broker.topology import TOPOLOGY, declare


async def measure(amqp_url: str, *, messages: int, window: int) -> float:
    """One repetition: events per second from the first publish to the last confirm."""
    bodies = [order_created_body() for _ in range(messages)]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare(channel)
        exchange = await channel.get_exchange(TOPOLOGY.exchange.name)
        started = time.perf_counter()
        await publish_pipelined(
            exchange,
            ((ORDER_CREATED, amqp_message(event_id, body)) for event_id, body in bodies),
            window=window,
        )
        elapsed = time.perf_counter() - started
        await purge_routed(channel, ORDER_CREATED)
    return messages / elapsed
