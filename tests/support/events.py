"""CloudEvents as an outside program sends them: built by hand, published with a plain AMQP
client, and read back from a queue without consuming them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage


def cloud_event(
    event_type: str,
    data: Mapping[str, Any],
    *,
    subject: uuid.UUID,
    version: int,
    event_id: uuid.UUID | None = None,
) -> bytes:
    """A structured CloudEvent body, written without the services' own envelope code."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(event_id or uuid.uuid4()),
            "source": "/tests",
            "type": event_type,
            "subject": str(subject),
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "aggregateversion": version,
            "data": dict(data),
        }
    ).encode()


def in_binary_mode(structured: bytes) -> tuple[bytes, dict[str, Any]]:
    """The same event for binary mode (CloudEvents AMQP binding): its data as the body (content
    type application/json), every other attribute in a `cloudEvents:` header."""
    attributes = json.loads(structured)
    data = attributes.pop("data")
    attributes.pop("datacontenttype", None)
    headers = {f"cloudEvents:{name}": value for name, value in attributes.items()}
    return json.dumps(data).encode(), headers


async def publish(
    amqp_url: str,
    routing_key: str,
    body: bytes,
    message_id: str = "",
    *,
    content_type: str | None = "application/cloudevents+json",
    headers: Mapping[str, Any] | None = None,
) -> None:
    """Publish onto `events` like any outside program would: a plain AMQP client (structured
    mode by default; binary mode with the attributes in `headers`)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("events")
        await exchange.publish(
            aio_pika.Message(
                body,
                headers=dict(headers or {}),
                message_id=message_id or None,
                type=routing_key,
                content_type=content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
        )


async def dead_letters(amqp_url: str, queue: str) -> list[AbstractIncomingMessage]:
    """Everything in `queue` right now (messages are requeued, not consumed)."""
    connection = await aio_pika.connect(amqp_url)
    messages = []
    async with connection:
        channel = await connection.channel()
        declared = await channel.get_queue(queue)
        while (message := await declared.get(fail=False)) is not None:
            messages.append(message)
        for message in messages:
            await message.nack(requeue=True)
    return messages
