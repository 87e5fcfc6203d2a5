"""The messages every throughput figure moves: realistic `order.created` CloudEvents.

Baselines and our code carry bodies built by the same function, so a ratio compares the work
around a message, never two message sizes. An order of two items is what a typical
`POST /orders` produces.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import aio_pika

from shared.events import DomainEvent, OrderCreated, OrderItem
from shared.messaging.envelope import CONTENT_TYPE, CloudEvent, encode, wrap

ORDER_CREATED = "order.created"
ITEMS: Sequence[dict[str, int | str]] = (
    {"sku": "BOOK-0001", "quantity": 2, "unit_price": 1_500},
    {"sku": "PEN-0042", "quantity": 1, "unit_price": 250},
)


def order_created(*, order_id: uuid.UUID, user_id: uuid.UUID) -> CloudEvent:
    """The envelope order_svc's unit of work writes for a new two-item order."""
    items = [OrderItem.model_validate(item) for item in ITEMS]
    event = DomainEvent(
        data=OrderCreated(
            order_id=order_id,
            user_id=user_id,
            items=items,
            total=sum(i.quantity * i.unit_price for i in items),
        ),
        subject=order_id,
        aggregate_version=1,
        correlation_id=order_id,
    )
    return wrap(event, source="/order_svc")


def order_created_body(user_id: uuid.UUID | None = None) -> tuple[uuid.UUID, bytes]:
    """(event id, encoded body) of a fresh order.created, as the relay would publish it."""
    envelope = order_created(order_id=uuid.uuid4(), user_id=user_id or uuid.uuid4())
    return envelope.id, encode(envelope)


def amqp_message(event_id: uuid.UUID, body: bytes) -> aio_pika.Message:
    """The AMQP message the relay builds for an outbox row (same properties, same size)."""
    return aio_pika.Message(
        body=body,
        message_id=str(event_id),
        type=ORDER_CREATED,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def typical_size() -> int:
    return len(order_created_body()[1])
