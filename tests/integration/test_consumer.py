"""The event consumer against real PostgreSQL (order_svc's tables) and, at the end, real RabbitMQ.

`handle()` is the whole processing of one message short of the ack, so most behaviours are
specified on it directly; the last test runs the consumer on a queue of a fresh vhost.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping

import aio_pika
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.topology import ORDER_SVC_QUEUE, TOPOLOGY, Queue, declare
from order_svc import handlers as order_handlers
from order_svc.app import SPEC
from order_svc.domain import Customer
from order_svc.models import inbox
from order_svc.uow import OrderUnitOfWork, unit_of_work
from shared.consumer import EventConsumer, Handler, Outcome
from shared.db import create_engine
from shared.envelope import CloudEvent
from shared.events import UserRegistered
from shared.metrics import Metrics
from tests.e2e.harness import cloud_event, dead_letters, eventually, publish

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = 5
USER_ID = uuid.uuid4()


@pytest.fixture
async def engine(order_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(order_db, pool_size=4)
    yield engine
    await engine.dispose()


def consumer_of(
    engine: AsyncEngine,
    *,
    queue: Queue = ORDER_SVC_QUEUE,
    handlers: Mapping[str, Handler[OrderUnitOfWork]] = SPEC.handlers,
    max_attempts: int = MAX_ATTEMPTS,
    prefetch: int = 10,
    batch_size: int = 1,
) -> EventConsumer[OrderUnitOfWork]:
    return EventConsumer(
        queue=queue,
        handlers=handlers,
        unit_of_work=lambda cause: unit_of_work(engine, cause),
        inbox_table=inbox,
        metrics=Metrics(),
        prefetch=prefetch,
        max_attempts=max_attempts,
        batch_size=batch_size,
    )


@pytest.fixture
def consumer(engine: AsyncEngine) -> EventConsumer[OrderUnitOfWork]:
    return consumer_of(engine)


def registered(user_id: uuid.UUID, name: str = "Ada") -> bytes:
    data = {"user_id": str(user_id), "email": "ada@example.com", "name": name, "credit_limit": 100}
    return cloud_event("user.registered", data, subject=user_id, version=1)


async def customer(engine: AsyncEngine, user_id: uuid.UUID) -> Customer | None:
    async with unit_of_work(engine) as uow:
        return await uow.customers.get(user_id)


async def inbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(inbox)) or 0)


async def test_the_same_event_delivered_twice_has_its_effect_once(
    engine: AsyncEngine, consumer: EventConsumer[OrderUnitOfWork]
) -> None:
    user_id = uuid.uuid4()
    renamed = cloud_event(
        "user.updated", {"user_id": str(user_id), "name": "Grace"}, subject=user_id, version=2
    )

    first = await consumer.handle(renamed)
    second = await consumer.handle(renamed)

    assert (first.outcome, second.outcome) == (Outcome.APPLIED, Outcome.DUPLICATE)
    assert await customer(engine, user_id) == Customer(
        id=user_id, name="Grace", status=None, version=2
    )
    assert await inbox_rows(engine) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"\x00 certainly not json", "not a valid CloudEvent", id="garbage"),
        pytest.param(
            cloud_event("user.teleported", {"user_id": str(USER_ID)}, subject=USER_ID, version=1),
            "unknown event type",
            id="unknown-type",
        ),
        pytest.param(
            cloud_event("user.updated", {"user_id": "nobody"}, subject=USER_ID, version=2),
            "invalid data for user.updated",
            id="invalid-data",
        ),
        pytest.param(
            cloud_event(
                "user.credit_released",
                {"user_id": str(USER_ID), "order_id": str(USER_ID), "amount": 1},
                subject=USER_ID,
                version=2,
            ),
            "no handler for user.credit_released",
            id="no-handler-here",
        ),
    ],
)
async def test_a_message_that_can_never_be_processed_is_dead_lettered_untouched(
    engine: AsyncEngine, consumer: EventConsumer[OrderUnitOfWork], body: bytes, reason: str
) -> None:
    result = await consumer.handle(body)

    assert result.outcome is Outcome.INVALID
    assert result.reason is not None
    assert reason in result.reason
    assert result.exception_type == "InvalidEvent"
    assert await inbox_rows(engine) == 0


async def test_a_failing_handler_is_reported_failed_and_leaves_no_trace(
    engine: AsyncEngine,
) -> None:
    async def broken(event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork) -> None:
        await order_handlers.on_user_registered(event, envelope, uow)
        raise LookupError("the handler is broken")

    queue = Queue(f"test.{uuid.uuid4().hex[:8]}", bindings=("user.registered",))
    consumer = consumer_of(engine, queue=queue, handlers={"user.registered": broken})
    user_id = uuid.uuid4()

    result = await consumer.handle(registered(user_id))

    assert result.outcome is Outcome.FAILED
    assert result.exception_type == "LookupError"
    assert result.reason == "LookupError: the handler is broken"
    assert await customer(engine, user_id) is None
    assert await inbox_rows(engine) == 0


async def test_on_the_broker_a_malformed_message_goes_to_the_dlq_and_the_next_one_is_applied(
    engine: AsyncEngine, consumer: EventConsumer[OrderUnitOfWork], amqp_url: str
) -> None:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await declare(await connection.channel(), TOPOLOGY)
        await consumer.start(connection)
        try:
            user_id = uuid.uuid4()
            await publish(amqp_url, "user.registered", b"{not json", message_id="malformed")
            await publish(amqp_url, "user.registered", registered(user_id))

            async def applied() -> Customer | None:
                return await customer(engine, user_id)

            async def dead_lettered() -> list[aio_pika.abc.AbstractIncomingMessage]:
                return await dead_letters(amqp_url, ORDER_SVC_QUEUE.dead_letter_queue)

            assert (await eventually(applied, timeout=10, what="the customer")).name == "Ada"
            [dead] = await eventually(dead_lettered, timeout=10, what="the dead letter")
        finally:
            await asyncio.wait_for(consumer.stop(), timeout=10)

        assert dead.body == b"{not json"
        assert dead.message_id == "malformed"
        headers = dead.headers
        assert "not a valid CloudEvent" in str(headers["x-dead-letter-reason"])
        assert headers["x-exception-type"] == "InvalidEvent"
        assert headers["x-original-routing-key"] == "user.registered"
        assert headers["x-original-queue"] == ORDER_SVC_QUEUE.name
        channel = await connection.channel()
        main = await channel.declare_queue(ORDER_SVC_QUEUE.name, passive=True)
        assert main.declaration_result.message_count == 0


class GatedBatches:
    """One worker taking batches of up to 8, whose first message waits at a gate until the
    others are delivered and buffered: what follows it is then one batch, deterministically."""

    def __init__(
        self, engine: AsyncEngine, amqp_url: str, handler: Handler[OrderUnitOfWork]
    ) -> None:
        self.gate = asyncio.Event()

        async def gated(event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork) -> None:
            await self.gate.wait()
            await handler(event, envelope, uow)

        self.amqp_url = amqp_url
        self.consumer = consumer_of(
            engine,
            handlers={**SPEC.handlers, "user.registered": gated},
            max_attempts=1,
            prefetch=8,
            batch_size=8,
        )

    async def run(self, bodies: list[bytes]) -> None:
        connection = await aio_pika.connect_robust(self.amqp_url)
        async with connection:
            await declare(await connection.channel(), TOPOLOGY)
            await self.consumer.start(connection)
            try:
                for body in bodies:
                    await publish(self.amqp_url, "user.registered", body)
                channel = await connection.channel()

                async def all_delivered() -> bool:
                    queue = await channel.declare_queue(ORDER_SVC_QUEUE.name, passive=True)
                    return queue.declaration_result.message_count == 0

                await eventually(all_delivered, timeout=10, what="every message delivered")
                self.gate.set()
            # Stopping waits for every delivered message to be settled.

            finally:
                await asyncio.wait_for(self.consumer.stop(), timeout=10)


async def transactions_in_inbox(engine: AsyncEngine) -> int:
    """How many transactions wrote the inbox rows (PostgreSQL stamps each row's `xmin`)."""
    async with engine.connect() as connection:
        return int(
            await connection.scalar(text("SELECT count(DISTINCT xmin::text) FROM inbox")) or 0
        )


async def test_messages_waiting_together_are_applied_in_one_transaction(
    engine: AsyncEngine, amqp_url: str
) -> None:
    users = [uuid.uuid4() for _ in range(5)]
    batches = GatedBatches(engine, amqp_url, order_handlers.on_user_registered)

    await batches.run([registered(u) for u in users])

    assert [await customer(engine, u) is not None for u in users] == [True] * 5
    # The first message alone (it held the gate), then the four waiting behind it together.
    assert await transactions_in_inbox(engine) == 2


async def test_a_failing_message_in_a_batch_fails_alone(engine: AsyncEngine, amqp_url: str) -> None:
    users = [uuid.uuid4() for _ in range(5)]
    poisoned = users[3]

    async def fails_for_one(
        event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork
    ) -> None:
        if event.user_id == poisoned:
            raise LookupError("this one is broken")
        await order_handlers.on_user_registered(event, envelope, uow)

    await GatedBatches(engine, amqp_url, fails_for_one).run([registered(u) for u in users])

    applied = [u for u in users if await customer(engine, u) is not None]
    assert applied == [u for u in users if u != poisoned]
    [dead] = await dead_letters(amqp_url, ORDER_SVC_QUEUE.dead_letter_queue)
    assert dead.headers["x-exception-type"] == "LookupError"


async def test_an_event_delivered_twice_in_one_batch_has_its_effect_once(
    engine: AsyncEngine, amqp_url: str
) -> None:
    first, twice = uuid.uuid4(), uuid.uuid4()
    duplicate = registered(twice)
    batches = GatedBatches(engine, amqp_url, order_handlers.on_user_registered)

    await batches.run([registered(first), duplicate, duplicate])

    assert await customer(engine, twice) is not None
    assert await inbox_rows(engine) == 2
