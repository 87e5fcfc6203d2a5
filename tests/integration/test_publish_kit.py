"""The publishing kit against the real broker (a fresh vhost): what it sends is what the relay
sends, confirmed, and order_svc's real consumer applies it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection

from broker.topology import TOPOLOGY, declare
from order_svc.domain import Customer
from shared.messaging.envelope import CONTENT_TYPE, decode
from shared.messaging.publish import Publisher, PublishFailed, build_event, publish
from shared.persistence.database import Database
from tests.integration.consumers import consumer_of, customer
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


def registration(user_id: uuid.UUID) -> dict[str, object]:
    return {"user_id": str(user_id), "email": "ada@example.com", "name": "Ada", "credit_limit": 7}


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await declare(await connection.channel(), TOPOLOGY)
        yield connection


@pytest.fixture
async def observer(broker: AbstractRobustConnection) -> AbstractQueue:
    """A queue bound to `events` with `#`: a copy of everything published."""
    queue = await (await broker.channel()).declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(TOPOLOGY.exchange.name, routing_key="#")
    return queue


async def drain(queue: AbstractQueue) -> list[AbstractIncomingMessage]:
    """Everything in `queue` now: confirms come after enqueueing, so nothing is still on its way."""
    taken = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        taken.append(message)
    return taken


async def test_a_published_event_is_on_the_broker_once_publish_returns_as_the_relay_sends_it(
    amqp_url: str, observer: AbstractQueue
) -> None:
    event = await publish("user.registered", registration(uuid.uuid4()), url=amqp_url)

    [message] = await drain(observer)
    assert message.message_id == str(event.id)
    assert message.type == message.routing_key == "user.registered"
    assert message.exchange == TOPOLOGY.exchange.name
    assert message.content_type == CONTENT_TYPE
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert decode(message.body)[0] == event


async def test_sending_an_event_twice_publishes_two_copies_with_one_id(
    amqp_url: str, observer: AbstractQueue
) -> None:
    event = build_event("user.registered", registration(uuid.uuid4()))

    async with Publisher(amqp_url) as publisher:
        await publisher.send(event, event)

    assert [message.message_id for message in await drain(observer)] == [str(event.id)] * 2


async def test_one_publisher_sends_many_events_in_order(
    amqp_url: str, observer: AbstractQueue
) -> None:
    async with Publisher(amqp_url) as publisher:
        events = [
            await publisher.publish("user.registered", registration(uuid.uuid4())) for _ in range(3)
        ]

    assert [m.message_id for m in await drain(observer)] == [str(e.id) for e in events]


async def test_publishing_where_the_topology_is_not_declared_fails_saying_so(
    amqp_url: str,
) -> None:
    with pytest.raises(PublishFailed, match=r"no 'events' exchange.*python -m broker declare"):
        await publish("user.registered", registration(uuid.uuid4()), url=amqp_url)


async def test_the_consumer_applies_an_event_published_with_the_kit(
    order_database: Database, amqp_url: str, broker: AbstractRobustConnection
) -> None:
    user_id = uuid.uuid4()
    consumer = consumer_of(order_database)
    await consumer.start(broker)
    try:
        await publish("user.registered", registration(user_id), url=amqp_url)

        async def applied() -> Customer | None:
            return await customer(order_database, user_id)

        assert await eventually(applied, timeout=15, what="the customer") == Customer(
            id=user_id, name="Ada", status="active", version=1
        )
    finally:
        await consumer.stop()
