"""RabbitMQ topology as data: the one exchange, each service's queue, its bindings and its DLQ.

Declaring is idempotent, so every service declares the whole topology at start (and
`python -m broker declare` does the same by hand). Declaring *all* queues, not only one's own,
matters: an event published before its consumer ever started must still be waiting for it.

Queues are quorum queues (replicated, durable). A message the consumer process cannot get
through at all (it crashes the process each time) is dead-lettered by RabbitMQ itself after
`DELIVERY_LIMIT` deliveries, at-least-once, to the same DLQ the consumer uses for invalid
messages; at-least-once dead-lettering requires `x-overflow: reject-publish`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel

DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Exchange:
    name: str
    kind: aio_pika.ExchangeType = aio_pika.ExchangeType.TOPIC


@dataclass(frozen=True)
class Queue:
    name: str
    bindings: tuple[str, ...]

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    @property
    def arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dead_letter_queue,
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
    bindings=("order.created", "order.cancelled"),
)
ORDER_SVC_QUEUE = Queue(
    "order_svc.events",
    bindings=(
        "user.registered",
        "user.updated",
        "user.deactivated",
        "user.credit_reserved",
        "user.credit_rejected",
    ),
)

TOPOLOGY = Topology(exchange=EVENTS, queues=(USER_SVC_QUEUE, ORDER_SVC_QUEUE))


async def declare(channel: AbstractChannel, topology: Topology = TOPOLOGY) -> None:
    exchange = await channel.declare_exchange(
        topology.exchange.name, topology.exchange.kind, durable=True
    )
    for queue in topology.queues:
        await channel.declare_queue(
            queue.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        declared = await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)
        for routing_key in queue.bindings:
            await declared.bind(exchange, routing_key)
