"""Retries with backoff through delay queues, and dead-lettering once attempts run out.

Each test runs a consumer on a queue of its own, in a fresh vhost, with short delays, and a
handler that fails on purpose a given number of times (after writing its effect, which the
failed attempt's rollback must undo).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from broker import dlq
from broker.topology import EVENTS, Queue, Topology, declare
from order_svc import handlers as order_handlers
from order_svc.domain import Customer
from order_svc.models import inbox
from order_svc.uow import OrderUnitOfWork
from shared.events import UserRegistered
from shared.messaging.consumer import EventConsumer
from shared.messaging.envelope import CloudEvent
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from tests.integration.consumers import consumed, consumer_of, customer, registered
from tests.integration.rows import count_rows
from tests.support.events import dead_letters, in_binary_mode, publish
from tests.support.severable import SeverableConnection
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


class FailingFirst:
    """The real replica handler, made to fail (after writing) on its first `failures` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(
        self, event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork
    ) -> None:
        self.calls += 1
        await order_handlers.on_user_registered(event, envelope, uow)
        if self.calls <= self.failures:
            raise ConnectionError(f"simulated outage on call {self.calls}")


@pytest.fixture
def queue() -> Queue:
    return Queue(
        f"test.{uuid.uuid4().hex[:8]}", bindings=("user.registered",), retry_delays_ms=(200, 400)
    )


@pytest.fixture
async def broker(amqp_url: str, queue: Queue) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await declare(await connection.channel(), Topology(exchange=EVENTS, queues=(queue,)))
        yield connection


async def run_until(
    consumer: EventConsumer[OrderUnitOfWork],
    broker: AbstractRobustConnection,
    condition: Callable[[], Awaitable[object]],
    what: str,
) -> None:
    await consumer.start(broker)
    try:
        await eventually(condition, timeout=20, what=what)
    finally:
        await consumer.stop()


async def test_a_handler_that_fails_twice_then_succeeds_is_applied_once(
    order_database: Database, amqp_url: str, queue: Queue, broker: AbstractRobustConnection
) -> None:
    handler = FailingFirst(2)
    consumer = consumer_of(order_database, queue=queue, handlers={"user.registered": handler})
    user_id = uuid.uuid4()
    await publish(amqp_url, "user.registered", registered(user_id))

    async def applied() -> Customer | None:
        return await customer(order_database, user_id)

    await run_until(consumer, broker, applied, "the customer after two retries")

    assert handler.calls == 3
    assert await customer(order_database, user_id) == Customer(
        id=user_id, name="Ada", status="active", version=1
    )
    assert await count_rows(order_database, inbox) == 1
    assert await dead_letters(amqp_url, queue.dead_letter_queue) == []


async def test_a_binary_mode_event_keeps_its_attributes_through_its_retries(
    order_database: Database, amqp_url: str, queue: Queue, broker: AbstractRobustConnection
) -> None:
    handler = FailingFirst(2)
    consumer = consumer_of(order_database, queue=queue, handlers={"user.registered": handler})
    user_id = uuid.uuid4()
    body, headers = in_binary_mode(registered(user_id))
    await publish(
        amqp_url, "user.registered", body, content_type="application/json", headers=headers
    )

    async def applied() -> Customer | None:
        return await customer(order_database, user_id)

    await run_until(consumer, broker, applied, "the customer after two retries")

    assert handler.calls == 3
    assert await dead_letters(amqp_url, queue.dead_letter_queue) == []


async def test_a_replayed_binary_mode_dead_letter_is_applied_once_the_fault_is_fixed(
    order_database: Database, amqp_url: str, queue: Queue, broker: AbstractRobustConnection
) -> None:
    handler = FailingFirst(failures=1)
    consumer = consumer_of(
        order_database, queue=queue, handlers={"user.registered": handler}, max_attempts=1
    )
    user_id = uuid.uuid4()
    body, headers = in_binary_mode(registered(user_id))
    await publish(
        amqp_url, "user.registered", body, content_type="application/json", headers=headers
    )

    async def dead_lettered() -> list[aio_pika.abc.AbstractIncomingMessage]:
        return await dead_letters(amqp_url, queue.dead_letter_queue)

    await run_until(consumer, broker, dead_lettered, "the dead letter")
    await dlq.replay(broker, queue)

    async def applied() -> Customer | None:
        return await customer(order_database, user_id)

    await run_until(consumer, broker, applied, "the replayed event applied")
    assert handler.calls == 2


async def test_retries_do_not_hold_up_the_messages_behind(
    order_database: Database, amqp_url: str, broker: AbstractRobustConnection
) -> None:
    """The first message fails once and waits two seconds; the second is applied meanwhile."""
    queue = Queue(
        f"test.{uuid.uuid4().hex[:8]}", bindings=("user.registered",), retry_delays_ms=(2_000,)
    )
    await declare(await broker.channel(), Topology(exchange=EVENTS, queues=(queue,)))
    first, second = uuid.uuid4(), uuid.uuid4()
    failed: list[uuid.UUID] = []

    async def fails_once_for_first(
        event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork
    ) -> None:
        if event.user_id == first and not failed:
            failed.append(first)
            raise ConnectionError("simulated outage")
        await order_handlers.on_user_registered(event, envelope, uow)

    consumer = consumer_of(
        order_database, queue=queue, handlers={"user.registered": fails_once_for_first}
    )
    await publish(amqp_url, "user.registered", registered(first))
    await publish(amqp_url, "user.registered", registered(second))

    async def second_applied() -> Customer | None:
        return await customer(order_database, second)

    async def first_applied() -> Customer | None:
        return await customer(order_database, first)

    await consumer.start(broker)
    try:
        await eventually(second_applied, timeout=10, what="the second message")
        assert await customer(order_database, first) is None
        await eventually(first_applied, timeout=10, what="the first message, after its delay")
    finally:
        await consumer.stop()
    assert failed == [first]


async def test_a_message_that_keeps_failing_is_dead_lettered_with_the_attempts(
    order_database: Database, amqp_url: str, queue: Queue, broker: AbstractRobustConnection
) -> None:
    handler = FailingFirst(failures=1_000)
    consumer = consumer_of(
        order_database, queue=queue, handlers={"user.registered": handler}, max_attempts=3
    )
    user_id = uuid.uuid4()
    event_id = str(uuid.uuid4())
    await publish(amqp_url, "user.registered", registered(user_id), message_id=event_id)

    async def dead_lettered() -> list[aio_pika.abc.AbstractIncomingMessage]:
        return await dead_letters(amqp_url, queue.dead_letter_queue)

    await run_until(consumer, broker, dead_lettered, "the dead letter")

    [dead] = await dead_letters(amqp_url, queue.dead_letter_queue)
    assert dead.message_id == event_id
    assert dead.headers["x-attempts"] == 3
    assert dead.headers["x-exception-type"] == "ConnectionError"
    assert "simulated outage on call 3" in str(dead.headers["x-dead-letter-reason"])
    assert handler.calls == 3
    assert await customer(order_database, user_id) is None
    assert await count_rows(order_database, inbox) == 0


async def test_a_replayed_dead_letter_is_applied_once_the_fault_is_fixed(
    order_database: Database, amqp_url: str, queue: Queue, broker: AbstractRobustConnection
) -> None:
    handler = FailingFirst(failures=2)
    consumer = consumer_of(
        order_database, queue=queue, handlers={"user.registered": handler}, max_attempts=2
    )
    user_id = uuid.uuid4()
    await publish(amqp_url, "user.registered", registered(user_id))

    async def dead_lettered() -> list[aio_pika.abc.AbstractIncomingMessage]:
        return await dead_letters(amqp_url, queue.dead_letter_queue)

    await run_until(consumer, broker, dead_lettered, "the dead letter")
    assert await customer(order_database, user_id) is None

    [replayed] = await dlq.replay(broker, queue)

    async def applied() -> Customer | None:
        return await customer(order_database, user_id)

    await run_until(consumer, broker, applied, "the replayed event applied")
    assert replayed.attempts == 2
    assert handler.calls == 3
    assert await count_rows(order_database, inbox) == 1
    assert await dead_letters(amqp_url, queue.dead_letter_queue) == []


async def test_a_failed_delivery_whose_channel_closed_is_not_dead_lettered_twice(
    order_database: Database, amqp_url: str, queue: Queue
) -> None:
    """The broker connection is cut while the handler runs and restored before it fails: the
    broker already has the delivery back, so only its redelivery is dead-lettered."""
    in_handler, severed = asyncio.Event(), asyncio.Event()
    calls = 0

    async def fails(event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            in_handler.set()
            await severed.wait()
        raise ConnectionError(f"simulated outage on call {calls}")

    metrics = Metrics()
    consumer = consumer_of(
        order_database,
        queue=queue,
        handlers={"user.registered": fails},
        max_attempts=1,
        metrics=metrics,
    )
    async with SeverableConnection(amqp_url) as broker:
        await declare(await broker.connection.channel(), Topology(exchange=EVENTS, queues=(queue,)))
        await consumer.start(broker.connection)
        try:
            await publish(amqp_url, "user.registered", registered(uuid.uuid4()))

            async def redelivery_dead_lettered() -> bool:
                return consumed(metrics, "user.registered", "dead_lettered") == 1

            await asyncio.wait_for(in_handler.wait(), timeout=10)
            await broker.sever()
            severed.set()
            await eventually(redelivery_dead_lettered, timeout=10, what="the redelivery")
        finally:
            await asyncio.wait_for(consumer.stop(), timeout=10)

    [dead] = await dead_letters(amqp_url, queue.dead_letter_queue)
    assert "simulated outage on call 2" in str(dead.headers["x-dead-letter-reason"])
    assert calls == 2
