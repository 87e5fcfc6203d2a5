"""A numbered side stream through the cluster: what a publisher confirm is worth across faults.

Jepsen's queue accounting. One client publishes 1, 2, 3, ... to a quorum queue of its own,
each with a publisher confirm, through the same load balancer as the services; another consumes
them and acks each after noting it. A number is *confirmed* once the broker confirmed it; a
publish that failed or timed out leaves its number indeterminate (it may or may not be in the
queue), and the publisher goes on with the next number on a new connection. At the end the
queue is drained, and:

- lost: confirmed but never consumed. The broker's promise is that this is empty as long as a
  majority of the queue's members survives;
- redelivered: consumed more than once (allowed: at-least-once);
- unexpected: consumed but never published (must never happen).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.messaging.amqp import with_heartbeat
from tests.support.waiting import eventually

QUEUE = "failover.side-stream"
PUBLISH_TIMEOUT_SECONDS = 10.0
RECONNECT_SECONDS = 0.5


@dataclass
class SideStream:
    amqp_url: str
    rate: float
    """messages per second"""
    published: int = 0
    """the highest number a publish was attempted for"""
    confirmed: set[int] = field(default_factory=set)
    consumed: Counter[int] = field(default_factory=Counter)
    failures: list[tuple[float, str]] = field(default_factory=list)
    """when (time.monotonic()) and what interrupted the publisher or the consumer"""

    async def declare(self) -> None:
        async with await aio_pika.connect(self.amqp_url) as connection:
            channel = await connection.channel()
            await channel.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})

    async def publish_until(self, stop: asyncio.Event) -> None:
        """Publish the next number every 1/rate seconds until `stop`, reconnecting on failure."""
        while not stop.is_set():
            try:
                async with await aio_pika.connect(with_heartbeat(self.amqp_url)) as connection:
                    channel = await connection.channel(publisher_confirms=True)
                    while not stop.is_set():
                        self.published += 1
                        number = self.published
                        await channel.default_exchange.publish(
                            aio_pika.Message(
                                str(number).encode(),
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=QUEUE,
                            timeout=PUBLISH_TIMEOUT_SECONDS,
                        )
                        self.confirmed.add(number)
                        await asyncio.sleep(1 / self.rate)
            except Exception as error:  # any of them leaves the number indeterminate
                self.failures.append((time.monotonic(), f"publisher: {type(error).__name__}"))
                await asyncio.sleep(RECONNECT_SECONDS)

    async def consume_forever(self) -> None:
        """Note and ack every message, reconnecting whenever the connection goes; cancel it."""
        while True:
            try:
                connection = await aio_pika.connect(with_heartbeat(self.amqp_url))
                async with connection:
                    closed = asyncio.Event()
                    connection.close_callbacks.add(lambda *_, closed=closed: closed.set())
                    channel = await connection.channel()
                    await channel.set_qos(prefetch_count=100)
                    queue = await channel.declare_queue(QUEUE, passive=True)
                    await queue.consume(self._take)
                    await closed.wait()
                self.failures.append((time.monotonic(), "consumer: connection closed"))
            except Exception as error:
                self.failures.append((time.monotonic(), f"consumer: {type(error).__name__}"))
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _take(self, message: AbstractIncomingMessage) -> None:
        self.consumed[int(message.body)] += 1
        await message.ack()

    async def drain(self, timeout: float) -> None:
        """Wait until every confirmed number was consumed, or `timeout` (then some are lost)."""

        async def drained() -> bool:
            return not self.lost

        with contextlib.suppress(AssertionError):  # what is missing then is reported as lost
            await eventually(drained, timeout=timeout, what="the side stream drained")

    @property
    def lost(self) -> list[int]:
        return sorted(self.confirmed - self.consumed.keys())

    @property
    def redelivered(self) -> int:
        return sum(self.consumed.values()) - len(self.consumed)

    @property
    def unexpected(self) -> list[int]:
        return sorted(n for n in self.consumed if not 1 <= n <= self.published)
