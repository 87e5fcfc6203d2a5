"""The event consumer against real PostgreSQL (order_svc's tables) and, at the end, real RabbitMQ.

`handle()` is the whole processing of one message short of the ack, so most behaviours are
specified on it directly; the last tests run the consumer on a queue of a fresh vhost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import aio_pika
import pytest

from broker.topology import ORDER_SVC_QUEUE, TOPOLOGY, Queue, declare
from order_svc import handlers as order_handlers
from order_svc.app import SPEC
from order_svc.domain import Customer, Item
from order_svc.models import inbox, outbox
from order_svc.uow import OrderUnitOfWork, unit_of_work
from shared.events import UserRegistered
from shared.messaging.consumer import EventConsumer, Handler
from shared.messaging.envelope import CloudEvent
from shared.messaging.middleware import Outcome
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from tests.integration.consumers import consumed, consumer_of, customer, registered
from tests.integration.rows import count_rows, outbox_events
from tests.support.events import cloud_event, dead_letters, publish
from tests.support.severable import SeverableConnection
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

USER_ID = uuid.uuid4()


@pytest.fixture
def consumer(order_database: Database) -> EventConsumer[OrderUnitOfWork]:
    return consumer_of(order_database)


async def test_the_same_event_delivered_twice_has_its_effect_once(
    order_database: Database, consumer: EventConsumer[OrderUnitOfWork]
) -> None:
    user_id = uuid.uuid4()
    renamed = cloud_event(
        "user.updated", {"user_id": str(user_id), "name": "Grace"}, subject=user_id, version=2
    )

    first = await consumer.handle(renamed)
    second = await consumer.handle(renamed)

    assert (first.outcome, second.outcome) == (Outcome.APPLIED, Outcome.DUPLICATE)
    assert await customer(order_database, user_id) == Customer(
        id=user_id, name="Grace", status=None, version=2
    )
    assert await count_rows(order_database, inbox) == 1


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
    order_database: Database, consumer: EventConsumer[OrderUnitOfWork], body: bytes, reason: str
) -> None:
    result = await consumer.handle(body)

    assert result.outcome is Outcome.INVALID
    assert result.reason is not None
    assert reason in result.reason
    assert result.exception_type == "InvalidEvent"
    assert await count_rows(order_database, inbox) == 0


async def test_a_failing_handler_is_reported_failed_and_leaves_no_trace(
    order_database: Database,
) -> None:
    async def broken(event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork) -> None:
        await order_handlers.on_user_registered(event, envelope, uow)
        raise LookupError("the handler is broken")

    queue = Queue(f"test.{uuid.uuid4().hex[:8]}", bindings=("user.registered",))
    consumer = consumer_of(order_database, queue=queue, handlers={"user.registered": broken})
    user_id = uuid.uuid4()

    result = await consumer.handle(registered(user_id))

    assert result.outcome is Outcome.FAILED
    assert result.exception_type == "LookupError"
    assert result.reason == "LookupError: the handler is broken"
    assert await customer(order_database, user_id) is None
    assert await count_rows(order_database, inbox) == 0


async def test_on_the_broker_a_malformed_message_goes_to_the_dlq_and_the_next_one_is_applied(
    order_database: Database, consumer: EventConsumer[OrderUnitOfWork], amqp_url: str
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
                return await customer(order_database, user_id)

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
        self,
        database: Database,
        amqp_url: str,
        handler: Handler[OrderUnitOfWork],
        event_type: str = "user.registered",
    ) -> None:
        self.gate = asyncio.Event()

        async def gated(event: Any, envelope: CloudEvent, uow: OrderUnitOfWork) -> None:
            await self.gate.wait()
            await handler(event, envelope, uow)

        self.amqp_url = amqp_url
        self.event_type = event_type
        self.consumer = consumer_of(
            database,
            handlers={**SPEC.handlers, event_type: gated},
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
                    await publish(self.amqp_url, self.event_type, body)
                channel = await connection.channel()

                async def all_delivered() -> bool:
                    queue = await channel.declare_queue(ORDER_SVC_QUEUE.name, passive=True)
                    return queue.declaration_result.message_count == 0

                await eventually(all_delivered, timeout=10, what="every message delivered")
                self.gate.set()
            # Stopping waits for every delivered message to be settled.

            finally:
                await asyncio.wait_for(self.consumer.stop(), timeout=10)


async def transactions_in_inbox(database: Database) -> int:
    """How many transactions wrote the inbox rows (PostgreSQL stamps each row's `xmin`)."""
    async with database.connection() as connection:
        count: int = await connection.fetchval("SELECT count(DISTINCT xmin::text) FROM inbox")
    return count


async def test_messages_waiting_together_are_applied_in_one_transaction(
    order_database: Database, amqp_url: str
) -> None:
    users = [uuid.uuid4() for _ in range(5)]
    batches = GatedBatches(order_database, amqp_url, order_handlers.on_user_registered)

    await batches.run([registered(u) for u in users])

    assert [await customer(order_database, u) is not None for u in users] == [True] * 5
    # The first message alone (it held the gate), then the four waiting behind it together.
    assert await transactions_in_inbox(order_database) == 2


async def test_a_failing_message_in_a_batch_fails_alone(
    order_database: Database, amqp_url: str
) -> None:
    users = [uuid.uuid4() for _ in range(5)]
    poisoned = users[3]

    async def fails_for_one(
        event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork
    ) -> None:
        if event.user_id == poisoned:
            raise LookupError("this one is broken")
        await order_handlers.on_user_registered(event, envelope, uow)

    await GatedBatches(order_database, amqp_url, fails_for_one).run([registered(u) for u in users])

    applied = [u for u in users if await customer(order_database, u) is not None]
    assert applied == [u for u in users if u != poisoned]
    [dead] = await dead_letters(amqp_url, ORDER_SVC_QUEUE.dead_letter_queue)
    assert dead.headers["x-exception-type"] == "LookupError"


async def test_an_event_delivered_twice_in_one_batch_has_its_effect_once(
    order_database: Database, amqp_url: str
) -> None:
    first, twice = uuid.uuid4(), uuid.uuid4()
    duplicate = registered(twice)
    batches = GatedBatches(order_database, amqp_url, order_handlers.on_user_registered)

    await batches.run([registered(first), duplicate, duplicate])

    assert await customer(order_database, twice) is not None
    assert await count_rows(order_database, inbox) == 2


async def test_each_message_of_a_batch_causes_the_events_its_handler_raised(
    order_database: Database, amqp_url: str
) -> None:
    user_id = uuid.uuid4()
    placed = [
        await order_handlers.place_order(
            order_handlers.PlaceOrder(
                user_id=user_id, items=(Item(sku="SKU-1", quantity=1, unit_price=100),)
            ),
            unit_of_work(order_database),
        )
        for _ in range(4)
    ]
    cause_of = {view.order.id: uuid.uuid4() for view in placed}
    batches = GatedBatches(
        order_database, amqp_url, order_handlers.on_credit_rejected, "user.credit_rejected"
    )

    await batches.run(
        [
            cloud_event(
                "user.credit_rejected",
                {
                    "user_id": str(user_id),
                    "order_id": str(order_id),
                    "amount": 100,
                    "reason": "insufficient_credit",
                },
                subject=user_id,
                version=2,
                event_id=event_id,
            )
            for order_id, event_id in cause_of.items()
        ]
    )

    assert await transactions_in_inbox(order_database) == 2, "the last three were one batch"
    rejected = [e for e in await outbox_events(order_database, outbox) if e.type != "order.created"]
    assert {(e.type, e.subject, e.causationid) for e in rejected} == {
        ("order.rejected", str(order_id), str(event_id)) for order_id, event_id in cause_of.items()
    }


async def test_a_batch_whose_channel_closed_before_its_ack_is_one_warning_and_applied_once(
    order_database: Database, amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker connection is cut while a batch of three runs; the batch commits, its acks
    cannot be sent, and the broker redelivers it to the reconnected consumer."""
    users = [uuid.uuid4() for _ in range(4)]
    buffered, in_batch, severed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    handled: list[uuid.UUID] = []

    async def held(event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork) -> None:
        handled.append(event.user_id)
        if len(handled) == 1:
            await buffered.wait()  # alone, until the other three are delivered: one batch
        elif len(handled) == 2:
            in_batch.set()
            await severed.wait()
        await order_handlers.on_user_registered(event, envelope, uow)

    metrics = Metrics()
    consumer = consumer_of(
        order_database,
        handlers={**SPEC.handlers, "user.registered": held},
        prefetch=8,
        batch_size=8,
        metrics=metrics,
    )
    caplog.set_level(logging.WARNING, logger="shared.messaging")
    async with SeverableConnection(amqp_url) as broker:
        channel = await broker.connection.channel()
        await declare(channel, TOPOLOGY)
        await consumer.start(broker.connection)
        try:
            for user_id in users:
                await publish(amqp_url, "user.registered", registered(user_id))

            async def all_delivered() -> bool:
                queue = await channel.declare_queue(ORDER_SVC_QUEUE.name, passive=True)
                return queue.declaration_result.message_count == 0

            async def redelivered_as_duplicates() -> bool:
                return consumed(metrics, "user.registered", "duplicate") == 3

            await eventually(all_delivered, timeout=10, what="every message delivered")
            buffered.set()
            await asyncio.wait_for(in_batch.wait(), timeout=10)
            await broker.sever()
            severed.set()
            await eventually(redelivered_as_duplicates, timeout=10, what="the redelivered batch")
        finally:
            await asyncio.wait_for(consumer.stop(), timeout=10)

    ours = [r for r in caplog.records if r.name.startswith("shared.messaging")]
    assert [r.getMessage() for r in ours if r.levelno >= logging.ERROR or r.exc_info] == []
    [warning] = [r for r in ours if "redeliver" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "before 3 deliveries" in warning.getMessage()
    assert sorted(handled) == sorted(users), "each handler ran once: the redeliveries were no-ops"
    assert [await customer(order_database, u) is not None for u in users] == [True] * 4
    assert await count_rows(order_database, inbox) == 4
