"""Events published onto `events` by an outside program: duplicates, reordered, malformed.

A plain AMQP client, straight to RabbitMQ (no proxy). Everything published is recorded, so the
checker can prove it had the effect the contract promises:

- duplicates: real events copied from the outboxes, published again with their own id (a
  redelivery) and with a new id (the same fact told twice); neither may have a second effect;
- reordered: a fake user's `user.*` events in a shuffled version order (the replica must end
  where in-order delivery would leave it), and a fake order's `order.cancelled` delivered before
  its `order.created` (it must never be reserved);
- malformed: bodies that are not JSON, not CloudEvents, of an unknown type, with invalid data,
  or of a type the receiving queue has no handler for; each must land in the DLQ of every queue
  its routing key reaches (an `order.*` one reaches user_svc's and inventory_svc's).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg

from broker.topology import TOPOLOGY
from shared.persistence.database import dsn
from tests.chaos.transient import through_outages
from tests.support.events import cloud_event
from tests.support.waiting import eventually

EVENTS_COPIED_PER_DATABASE = 4
"""Each copied twice per fault: once with its own id, once with a new one."""
TOMBSTONE_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class ExpectedCustomer:
    name: str
    status: str
    version: int


@dataclass(frozen=True)
class Outgoing:
    routing_key: str
    body: bytes
    message_id: str


@dataclass
class OutsidePublisher:
    amqp_url: str
    user_db: str
    order_db: str
    inventory_db: str
    users: Sequence[uuid.UUID]
    rng: random.Random
    malformed: dict[str, set[str]] = field(default_factory=dict)
    """message id -> the dead-letter queues it must end in"""
    duplicates_published: int = 0
    reordered_published: int = 0
    fake_customers: dict[uuid.UUID, ExpectedCustomer] = field(default_factory=dict)
    cancelled_before_created: list[uuid.UUID] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)
    """Outside events that should have been applied before the next one, and were not."""

    async def publish_duplicates(self) -> str:
        copies: list[Outgoing] = []
        for database, types in (
            (self.order_db, ("order.created", "order.cancelled")),
            (self.user_db, ("user.credit_reserved", "user.credit_rejected", "user.registered")),
            (self.inventory_db, ("inventory.stock_reserved", "inventory.stock_rejected")),
        ):
            for event_id, event_type, body in await _published_events(
                database, types, EVENTS_COPIED_PER_DATABASE
            ):
                copies.append(Outgoing(event_type, body, str(event_id)))
                copies.append(_with_new_id(event_type, body))
        self.rng.shuffle(copies)
        await _publish_all(self.amqp_url, copies)
        self.duplicates_published += len(copies)
        return f"{len(copies)} copies of published events"

    async def publish_reordered(self) -> str:
        user_events = self._fake_user_history()
        await _publish_all(self.amqp_url, user_events)
        order_id = await self._cancel_then_create(self.rng.choice(self.users))
        self.reordered_published += len(user_events) + 2
        return f"fake user's events out of version order; order {order_id} cancelled then created"

    async def publish_malformed(self) -> str:
        messages = _malformed_messages()
        for message in messages:
            self.malformed[message.message_id] = {
                q.dead_letter_queue for q in TOPOLOGY.queues if message.routing_key in q.bindings
            }
        await _publish_all(self.amqp_url, messages)
        return f"{len(messages)} malformed messages"

    def _fake_user_history(self) -> list[Outgoing]:
        """Versions 1..4 of a user this system never registered, in a shuffled order."""
        user_id = uuid.uuid4()
        tag = user_id.hex[:6]
        history: list[tuple[str, int, dict[str, Any]]] = [
            (
                "user.registered",
                1,
                {"email": f"fake-{tag}@example.com", "name": f"First {tag}", "credit_limit": 1},
            ),
            ("user.updated", 2, {"name": f"Second {tag}"}),
            ("user.deactivated", 3, {}),
            ("user.updated", 4, {"name": f"Last {tag}"}),
        ]
        shuffled = list(history)
        while shuffled == history:
            self.rng.shuffle(shuffled)
        self.fake_customers[user_id] = ExpectedCustomer(
            name=f"Last {tag}", status="deactivated", version=4
        )
        return [
            _event(event_type, {"user_id": str(user_id), **data}, subject=user_id, version=version)
            for event_type, version, data in shuffled
        ]

    async def _cancel_then_create(self, user_id: uuid.UUID) -> uuid.UUID:
        """`order.cancelled` first, and only once it is applied, the order's `order.created`.

        Published together, two replicas might take them in either order; waiting for the
        tombstone makes the late creation certain, which is the case worth proving."""
        order_id = uuid.uuid4()
        total = self.rng.randint(1, 5_000)
        common = {"order_id": str(order_id), "user_id": str(user_id)}
        cancelled = _event(
            "order.cancelled",
            {**common, "total": total, "previous_status": "pending"},
            subject=order_id,
            version=2,
        )
        created = _event(
            "order.created",
            {
                **common,
                "items": [{"sku": "FAKE", "quantity": 1, "unit_price": total}],
                "total": total,
            },
            subject=order_id,
            version=1,
        )
        await _publish_all(self.amqp_url, [cancelled])

        async def tombstone_written() -> bool:
            return await through_outages(
                lambda: _has_row(self.user_db, CREDIT_DECISION, order_id)
            ) and await through_outages(
                lambda: _has_row(self.inventory_db, STOCK_DECISION, order_id)
            )

        try:
            await eventually(
                tombstone_written, timeout=TOMBSTONE_TIMEOUT_SECONDS, what="cancellation applied"
            )
        except AssertionError:
            self.not_applied.append(
                f"order.cancelled of order {order_id} not applied in {TOMBSTONE_TIMEOUT_SECONDS}s"
            )
            return order_id
        await _publish_all(self.amqp_url, [created])
        self.cancelled_before_created.append(order_id)
        return order_id


def _event(event_type: str, data: dict[str, Any], *, subject: uuid.UUID, version: int) -> Outgoing:
    event_id = uuid.uuid4()
    body = cloud_event(event_type, data, subject=subject, version=version, event_id=event_id)
    return Outgoing(event_type, body, str(event_id))


def _with_new_id(event_type: str, body: bytes) -> Outgoing:
    event = json.loads(body)
    event["id"] = str(uuid.uuid4())
    return Outgoing(event_type, json.dumps(event).encode(), event["id"])


def _malformed_messages() -> list[Outgoing]:
    subject = uuid.uuid4()
    order = {
        "order_id": str(subject),
        "user_id": str(uuid.uuid4()),
        "items": [{"sku": "X", "quantity": 1, "unit_price": 1}],
        "total": 1,
    }
    cases: list[tuple[str, Callable[[uuid.UUID], bytes]]] = [
        ("order.created", lambda _: b"{this is not json"),
        ("user.updated", lambda _: b'{"hello": "not a cloud event"}'),
        (
            "order.cancelled",
            lambda i: cloud_event("order.exploded", order, subject=subject, version=1, event_id=i),
        ),
        (
            "user.credit_reserved",
            lambda i: cloud_event(
                "user.credit_reserved",
                {"user_id": "not-a-uuid", "order_id": str(subject), "amount": -5},
                subject=subject,
                version=2,
                event_id=i,
            ),
        ),
        # A valid event, but of a type the queue it is routed to has no handler for.
        (
            "order.created",
            lambda i: cloud_event(
                "user.updated",
                {"user_id": str(subject), "name": "x"},
                subject=subject,
                version=2,
                event_id=i,
            ),
        ),
        (
            "inventory.stock_rejected",
            lambda i: cloud_event(
                "inventory.stock_rejected",
                {"order_id": str(subject), "reason": "no reason at all", "skus": "X"},
                subject=subject,
                version=1,
                event_id=i,
            ),
        ),
    ]
    messages = []
    for routing_key, body in cases:
        message_id = uuid.uuid4()
        messages.append(Outgoing(routing_key, body(message_id), str(message_id)))
    return messages


CREDIT_DECISION = "SELECT 1 FROM credit_reservations WHERE order_id = $1"
STOCK_DECISION = "SELECT 1 FROM stock_reservations WHERE order_id = $1"


async def _has_row(database: str, query: str, order_id: uuid.UUID) -> bool:
    """Whether a participant holds a decision (a tombstone, here) for the order."""
    connection = await asyncpg.connect(dsn(database))
    try:
        found = await connection.fetchval(query, order_id)
    finally:
        await connection.close()
    return found is not None


async def _published_events(
    database: str, types: Sequence[str], limit: int
) -> list[tuple[uuid.UUID, str, bytes]]:
    return await through_outages(lambda: _fetch_published(database, types, limit))


async def _fetch_published(
    database: str, types: Sequence[str], limit: int
) -> list[tuple[uuid.UUID, str, bytes]]:
    connection = await asyncpg.connect(dsn(database))
    try:
        rows = await connection.fetch(
            "SELECT id, type, body FROM outbox"
            " WHERE published_at IS NOT NULL AND type = ANY($1::text[])"
            " ORDER BY random() LIMIT $2",
            list(types),
            limit,
        )
    finally:
        await connection.close()
    return [(row["id"], row["type"], bytes(row["body"])) for row in rows]


async def _publish_all(amqp_url: str, messages: Sequence[Outgoing]) -> None:
    """Publish in this order, each one confirmed before the next; after an outage, the whole
    list again (a message published twice is one more duplicate, which changes nothing)."""
    await through_outages(lambda: _publish_in_order(amqp_url, messages))


async def _publish_in_order(amqp_url: str, messages: Sequence[Outgoing]) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("events")
        for message in messages:
            await exchange.publish(
                aio_pika.Message(
                    message.body,
                    message_id=message.message_id,
                    type=message.routing_key,
                    content_type="application/cloudevents+json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=message.routing_key,
            )
