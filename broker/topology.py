"""RabbitMQ topology as data: the one exchange, each service's queue, its bindings and its DLQ.

Declaring is idempotent, so every service declares the whole topology at start (and
`python -m broker declare` does the same by hand). Declaring *all* queues, not only one's own,
matters: an event published before its consumer ever started must still be waiting for it.
Under least-privileged broker accounts a service may declare only its own queues; then the
whole topology is set up beforehand by an administrator (see `broker.ownership`).

Queues are quorum queues (replicated, durable). A message the consumer process cannot get
through at all (it crashes the process each time) is dead-lettered by RabbitMQ itself after
`DELIVERY_LIMIT` deliveries, at-least-once, to the same DLQ the consumer uses for invalid
messages; at-least-once dead-lettering requires `x-overflow: reject-publish`.

Retries wait in per-queue delay queues (`<queue>.retry.<delay>ms`): a quorum queue whose only
job is to hold a message for its TTL and then dead-letter it back to the queue it came from
(through the default exchange, so only that one consumer sees it again, not every subscriber of
the event). The delays grow with the attempt number; one delay per queue keeps every delay
queue FIFO in expiry order, so no message waits behind a longer-lived one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

DELIVERY_LIMIT = 20
RETRY_DELAYS_MS = (1_000, 5_000, 30_000, 120_000)


@dataclass(frozen=True)
class Exchange:
    name: str
    kind: aio_pika.ExchangeType = aio_pika.ExchangeType.TOPIC


@dataclass(frozen=True)
class Queue:
    name: str
    bindings: tuple[str, ...]
    retry_delays_ms: tuple[int, ...] = RETRY_DELAYS_MS

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    @property
    def arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            **_dead_letter_to(self.dead_letter_queue),
        }

    def retry_queue(self, failed_attempt: int) -> str:
        """Where a message waits after its `failed_attempt`-th attempt (1-based) failed."""
        delay = self.retry_delays_ms[min(failed_attempt, len(self.retry_delays_ms)) - 1]
        return f"{self.name}.retry.{delay}ms"

    @property
    def retry_queues(self) -> dict[str, dict[str, Any]]:
        """Each delay queue's name and arguments: hold for the delay, then back to this queue."""
        return {
            f"{self.name}.retry.{delay}ms": {
                "x-queue-type": "quorum",
                "x-message-ttl": delay,
                **_dead_letter_to(self.name),
            }
            for delay in self.retry_delays_ms
        }


def _dead_letter_to(queue: str) -> dict[str, Any]:
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


@dataclass(frozen=True)
class Topology:
    exchange: Exchange
    queues: tuple[Queue, ...]

    def queue(self, name: str) -> Queue:
        return next(q for q in self.queues if q.name == name)


EVENTS = Exchange("events")

USER_SVC_QUEUE = Queue(
    "user_svc.events",
    bindings=("order.created", "order.rejected", "order.cancelled"),
)
ORDER_SVC_QUEUE = Queue(
    "order_svc.events",
    bindings=(
        "user.registered",
        "user.updated",
        "user.deactivated",
        "user.credit_reserved",
        "user.credit_rejected",
        "inventory.stock_reserved",
        "inventory.stock_rejected",
    ),
)

INVENTORY_SVC_QUEUE = Queue(
    "inventory_svc.events",
    bindings=("order.created", "order.rejected", "order.cancelled"),
)

TOPOLOGY = Topology(exchange=EVENTS, queues=(USER_SVC_QUEUE, ORDER_SVC_QUEUE, INVENTORY_SVC_QUEUE))


async def declare(channel: AbstractChannel, topology: Topology = TOPOLOGY) -> None:
    exchange = await channel.declare_exchange(
        topology.exchange.name, topology.exchange.kind, durable=True
    )
    for queue in topology.queues:
        await declare_queue_set(channel, queue, exchange)


async def declare_queue_set(
    channel: AbstractChannel, queue: Queue, exchange: AbstractExchange
) -> None:
    """A service's queue, its DLQ and delay queues, and the queue's bindings to `exchange`."""
    await channel.declare_queue(
        queue.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    for name, arguments in queue.retry_queues.items():
        await channel.declare_queue(name, durable=True, arguments=arguments)
    declared = await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
    for routing_key in queue.bindings:
        await declared.bind(exchange, routing_key)
