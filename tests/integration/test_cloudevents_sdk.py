"""Interoperability with the official CloudEvents SDK for Python (`cloudevents`), both ways, on
the real broker (a fresh vhost) and order_svc's real consumer and database.

SDK -> services: an event the SDK builds, put on the `events` exchange by each of its AMQP
bindings in each content mode (`amqp`: structured, or binary with `cloudEvents_` application
properties and the time as milliseconds; `rabbitmq`: structured, or binary with `ce-` headers,
every value a string), with or without a `datacontenttype` and with parameters in it, is applied.

Services -> SDK: what the publishing kit and the outbox relay send is read back by the SDK's
readers (both bindings, and the v1 API's `from_http`) with the same attributes and data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import amqp, rabbitmq
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from cloudevents.v1.http import from_http

from broker.topology import ORDER_SVC_QUEUE, TOPOLOGY, declare
from order_svc.domain import Customer
from order_svc.uow import OrderUnitOfWork
from shared.messaging.consumer import EventConsumer
from shared.messaging.envelope import CloudEvent
from shared.messaging.publish import Publisher
from shared.messaging.relay import OutboxRelay
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from tests.integration.consumers import consumer_of, customer
from tests.support.events import dead_letters, publish
from tests.support.waiting import eventually
from user_svc import models as user_models
from user_svc.domain import User
from user_svc.uow import unit_of_work as user_unit_of_work

pytestmark = pytest.mark.integration

SdkMessage = amqp.AMQPMessage | rabbitmq.RabbitMQMessage

ENCODINGS: dict[str, Callable[[BaseCloudEvent], SdkMessage]] = {
    "amqp-structured": amqp.to_structured_event,
    "amqp-binary": amqp.to_binary_event,
    "rabbitmq-structured": rabbitmq.to_structured_event,
    "rabbitmq-binary": rabbitmq.to_binary_event,
}


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await declare(await connection.channel(), TOPOLOGY)
        yield connection


@pytest.fixture
async def consumer(
    order_database: Database, broker: AbstractRobustConnection
) -> AsyncIterator[EventConsumer[OrderUnitOfWork]]:
    running = consumer_of(order_database)
    await running.start(broker)
    yield running
    await running.stop()


@pytest.fixture
async def observer(broker: AbstractRobustConnection) -> aio_pika.abc.AbstractQueue:
    channel: AbstractChannel = await broker.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(TOPOLOGY.exchange.name, routing_key="#")
    return queue


def sdk_registration(user_id: uuid.UUID, credit_limit: int = 500, **attributes: Any) -> SdkEvent:
    """A `user.registered` as another program would build it with the SDK."""
    return SdkEvent(
        attributes={
            "type": "user.registered",
            "source": "https://example.com/another-program",
            "subject": str(user_id),
            "aggregateversion": 1,
            **attributes,
        },
        data={
            "user_id": str(user_id),
            "email": "grace@example.com",
            "name": "Grace",
            "credit_limit": credit_limit,
        },
    )


async def publish_sdk_message(amqp_url: str, message: SdkMessage) -> None:
    """Put the SDK's message on the broker as it is: body, content type and headers."""
    if isinstance(message, amqp.AMQPMessage):
        body = message.application_data
        content_type = message.properties.get("content-type")
        headers = message.application_properties
    else:
        body, content_type, headers = message.body, message.content_type, message.headers
    await publish(amqp_url, "user.registered", body, content_type=content_type, headers=headers)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize(
    "datacontenttype", ["application/json", "application/json; charset=utf-8", None]
)
async def test_an_event_the_sdk_publishes_is_applied_by_the_consumer(
    order_database: Database,
    amqp_url: str,
    consumer: EventConsumer[OrderUnitOfWork],
    encoding: str,
    datacontenttype: str | None,
) -> None:
    user_id = uuid.uuid4()
    given = {} if datacontenttype is None else {"datacontenttype": datacontenttype}
    event = sdk_registration(user_id, **given)

    await publish_sdk_message(amqp_url, ENCODINGS[encoding](event))

    async def applied() -> Customer | None:
        return await customer(order_database, user_id)

    assert await eventually(applied, timeout=15, what="the customer") == Customer(
        id=user_id, name="Grace", status="active", version=1
    )


async def test_an_sdk_event_in_binary_mode_with_invalid_data_is_dead_lettered_with_its_headers(
    amqp_url: str, consumer: EventConsumer[OrderUnitOfWork]
) -> None:
    event = sdk_registration(uuid.uuid4(), credit_limit=-1, datacontenttype="application/json")
    message = amqp.to_binary_event(event)

    await publish_sdk_message(amqp_url, message)

    async def dead_lettered() -> list[AbstractIncomingMessage]:
        return await dead_letters(amqp_url, ORDER_SVC_QUEUE.dead_letter_queue)

    [dead] = await eventually(dead_lettered, timeout=15, what="the dead letter")
    headers = dead.headers or {}
    assert "invalid data for user.registered: credit_limit" in str(headers["x-dead-letter-reason"])
    assert headers["cloudEvents_id"] == event.get_id()
    assert dead.body == message.application_data


def sdk_readings(message: AbstractIncomingMessage) -> dict[str, tuple[dict[str, Any], Any]]:
    """The message as each SDK reader reads it: (attributes, data), times as datetimes."""
    headers = dict(message.headers or {})
    by_amqp = amqp.from_amqp_event(
        amqp.AMQPMessage(
            properties={"content-type": message.content_type},
            application_properties=headers,
            application_data=message.body,
        )
    )
    by_rabbitmq = rabbitmq.from_rabbitmq_event(
        rabbitmq.RabbitMQMessage(
            headers=headers, content_type=message.content_type, body=message.body
        )
    )
    by_http = from_http({"content-type": message.content_type or ""}, message.body)
    http_attributes = dict(by_http.get_attributes())
    http_attributes["time"] = datetime.fromisoformat(http_attributes["time"])
    return {
        "amqp": (dict(by_amqp.get_attributes()), by_amqp.get_data()),
        "rabbitmq": (dict(by_rabbitmq.get_attributes()), by_rabbitmq.get_data()),
        "v1 from_http": (http_attributes, by_http.get_data()),
    }


def as_sdk_reads_it(envelope: CloudEvent) -> tuple[dict[str, Any], Any]:
    attributes = envelope.model_dump(mode="json", exclude_none=True, exclude={"data", "time"})
    return attributes | {"time": envelope.time}, envelope.data


async def test_an_event_the_kit_publishes_is_read_by_the_sdk_with_the_same_attributes_and_data(
    amqp_url: str, observer: aio_pika.abc.AbstractQueue
) -> None:
    order_id, user_id = uuid.uuid4(), uuid.uuid4()
    async with Publisher(amqp_url) as publisher:
        event = await publisher.publish(
            "order.created",
            {
                "order_id": str(order_id),
                "user_id": str(user_id),
                "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": 1500}],
                "total": 3000,
            },
            aggregate_version=1,
        )

    message = await eventually(lambda: observer.get(no_ack=True, fail=False), what="the event")

    for reader, reading in sdk_readings(message).items():
        assert reading == as_sdk_reads_it(event), reader


async def test_an_event_the_relay_publishes_is_read_by_the_sdk_with_the_same_attributes_and_data(
    user_database: Database, broker: AbstractRobustConnection, observer: aio_pika.abc.AbstractQueue
) -> None:
    async with user_unit_of_work(user_database) as uow:
        user = User.register(
            id=uuid.uuid4(), email=f"{uuid.uuid4().hex}@example.com", name="Ada", credit_limit=9
        )
        await uow.users.add(user, password_hash="not-a-real-hash")
        [committed] = await uow.commit()
    relay = OutboxRelay(
        database=user_database,
        outbox=user_models.outbox,
        amqp=broker,
        exchange=TOPOLOGY.exchange.name,
        metrics=Metrics(),
        batch_size=10,
        poll_seconds=60.0,
    )
    assert await relay.publish_pending() == 1

    message = await eventually(lambda: observer.get(no_ack=True, fail=False), what="the event")

    for reader, reading in sdk_readings(message).items():
        assert reading == as_sdk_reads_it(committed), reader
