"""Broker plumbing of the bench: quorum queues, pipelined confirmed publishing, queue depth.

`publish_pipelined` is both the plain-publisher baseline and the way the consume benchmarks fill
their queues: a window of outstanding publisher confirms, the fastest safe way aio-pika offers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from broker.topology import TOPOLOGY

QUORUM = {"x-queue-type": "quorum"}


async def quorum_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    return await channel.declare_queue(name, durable=True, arguments=QUORUM)


async def publish_pipelined(
    exchange: AbstractExchange,
    messages: Iterable[tuple[str, aio_pika.Message]],
    *,
    window: int,
) -> int:
    """Publish (routing key, message) pairs with at most `window` confirms outstanding.

    Raises if the broker nacks or drops any: a benchmark that loses messages measures nothing.
    """
    slots = asyncio.Semaphore(window)
    pending: set[asyncio.Task[object]] = set()
    failures: list[BaseException] = []
    count = 0

    def done(task: asyncio.Task[object]) -> None:
        pending.discard(task)
        slots.release()
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]

    for routing_key, message in messages:
        await slots.acquire()
        if failures:
            break
        task: asyncio.Task[object] = asyncio.ensure_future(
            exchange.publish(message, routing_key=routing_key)
        )
        pending.add(task)
        task.add_done_callback(done)
        count += 1
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    if failures:
        raise RuntimeError(f"{len(failures)} publishes failed") from failures[0]
    return count


async def depth(channel: AbstractChannel, name: str) -> int:
    """Messages ready in `name` (a passive declare: the queue must exist)."""
    declared = await channel.declare_queue(name, passive=True)
    result = declared.declaration_result
    return int(result.message_count or 0)


async def wait_for_depth(
    channel: AbstractChannel, name: str, expected: int, *, within: float = 60
) -> None:
    """Quorum queues count a message once its Raft entry applies: wait until all are counted."""
    deadline = asyncio.get_running_loop().time() + within
    while (current := await depth(channel, name)) < expected:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{name} holds {current} of {expected} messages")
        await asyncio.sleep(0.05)


async def purge_routed(channel: AbstractChannel, routing_key: str) -> None:
    """Empty every queue of the topology that `routing_key` reaches: what a measurement published
    would otherwise pile up in the vhost and slow the measurements after it."""
    for queue in TOPOLOGY.queues:
        if routing_key in queue.bindings:
            declared = await channel.declare_queue(queue.name, passive=True)
            await declared.purge()
