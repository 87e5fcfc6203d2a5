"""order_svc's event consumer as the integration tests build it, and what they ask of it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from broker.topology import ORDER_SVC_QUEUE, Queue
from order_svc.app import SPEC
from order_svc.domain import Customer
from order_svc.models import inbox
from order_svc.uow import OrderUnitOfWork, unit_of_work
from shared.messaging.consumer import EventConsumer, Handler
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from tests.support.events import cloud_event

MAX_ATTEMPTS = 5


def consumer_of(
    database: Database,
    *,
    queue: Queue = ORDER_SVC_QUEUE,
    handlers: Mapping[str, Handler[OrderUnitOfWork]] = SPEC.handlers,
    max_attempts: int = MAX_ATTEMPTS,
    prefetch: int = 10,
    batch_size: int = 1,
    metrics: Metrics | None = None,
) -> EventConsumer[OrderUnitOfWork]:
    return EventConsumer(
        queue=queue,
        handlers=handlers,
        unit_of_work=lambda: unit_of_work(database),
        inbox_table=inbox,
        metrics=metrics or Metrics(),
        prefetch=prefetch,
        max_attempts=max_attempts,
        batch_size=batch_size,
    )


def registered(user_id: uuid.UUID, name: str = "Ada") -> bytes:
    data = {"user_id": str(user_id), "email": "ada@example.com", "name": name, "credit_limit": 100}
    return cloud_event("user.registered", data, subject=user_id, version=1)


async def customer(database: Database, user_id: uuid.UUID) -> Customer | None:
    async with unit_of_work(database) as uow:
        return await uow.customers.get(user_id)


def consumed(metrics: Metrics, event_type: str, outcome: str) -> int:
    """How many deliveries of `event_type` the consumer counted as settled with `outcome`."""
    value = metrics.registry.get_sample_value(
        "consumer_messages_total", {"type": event_type, "outcome": outcome}
    )
    return int(value or 0)
