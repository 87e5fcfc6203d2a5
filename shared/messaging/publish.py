"""Publishing catalogued events from any program: the kit for tools, tests and other services.

    from shared.messaging.publish import Publisher, build_event, publish

    event = await publish("user.registered", data)              # connect, publish, confirm, close
    async with Publisher(url) as publisher:                     # one connection for many events
        event = await publisher.publish("user.updated", data, aggregate_version=2)
        await publisher.send(event)                             # the same event again: a duplicate
    event = build_event("user.deactivated", data)              # built and checked, not sent

What it guarantees:

- An event it builds is one every consumer accepts. `data` is validated against the type's model
  in `shared.events`, and the whole event against the consumers' own rules
  (`shared.messaging.envelope.decode`), before anything is sent; otherwise `InvalidEvent`, with
  the reason a consumer would have dead-lettered it for. An unknown type is an `InvalidEvent` too.
- `send` returns once the broker has confirmed every event (publisher confirms), or raises
  `PublishFailed`. Events go out exactly as the services' relay sends them (one message builder,
  `shared.messaging.binding`): structured JSON, persistent, AMQP message_id = id, type = type,
  routing key = type, on the `events` exchange.
- The defaults make the event the contract describes: `source` is the producing service of the
  type (`/user_svc` for `user.*`: a program standing in for it; pass your own source to tell your
  events apart, consumers accept any), `subject` the aggregate id found in `data`, the
  correlation id the order id in `data` if there is one, `aggregate_version` 1, a new id, the time
  now and a new trace. Every one of them can be given (`Attributes`).

The broker is `url`, else `AMQP_URL`, else the contract's default. Connection failures raise
aio-pika's own errors (`aiormq.exceptions.AMQPConnectionError`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypedDict, Unpack
from uuid import UUID, uuid4

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection, AbstractExchange
from pydantic import ValidationError

from broker.catalogue import source_of
from broker.topology import EVENTS
from shared.events import EVENT_TYPES
from shared.messaging.binding import structured_message
from shared.messaging.envelope import (
    DATA_CONTENT_TYPE,
    CloudEvent,
    InvalidEvent,
    child_traceparent,
    decode,
    encode,
    summarise,
)

__all__ = [
    "DEFAULT_AMQP_URL",
    "Attributes",
    "InvalidEvent",
    "PublishFailed",
    "Publisher",
    "broker_url",
    "build_event",
    "publish",
]

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

# The `data` field holding the id of the aggregate an event is about (its `subject`), by the
# type's prefix; the first one present wins.
SUBJECT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "user": ("user_id",),
    "order": ("order_id",),
    "inventory": ("sku", "order_id"),
}


class Attributes(TypedDict, total=False):
    """The envelope attributes a caller may set; left out or None, each takes its default."""

    subject: str | UUID | None
    source: str | None
    aggregate_version: int | None
    correlation_id: str | UUID | None
    causation_id: str | UUID | None
    traceparent: str | None
    event_id: str | UUID | None
    time: datetime | None


class PublishFailed(Exception):
    """The broker did not take an event: not confirmed, or no `events` exchange to take it."""


def broker_url() -> str:
    """`AMQP_URL`, or the contract's default broker."""
    return os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL


def build_event(
    event_type: str, data: Mapping[str, Any], **attributes: Unpack[Attributes]
) -> CloudEvent:
    """A CloudEvent of `event_type` carrying `data`, checked as a consumer checks it."""
    model = EVENT_TYPES.get(event_type)
    if model is None:
        raise InvalidEvent(
            f"unknown event type {event_type[:100]!r}; the catalogued types are "
            f"{', '.join(sorted(EVENT_TYPES))}"
        )
    try:
        normalised = model.model_validate(data).model_dump(mode="json")
    except ValidationError as error:
        raise InvalidEvent(f"invalid data for {event_type}: {summarise(error)}") from error
    subject = attributes.get("subject") or _subject_in(event_type, normalised)
    correlation = attributes.get("correlation_id") or normalised.get("order_id")
    causation = attributes.get("causation_id")
    version = attributes.get("aggregate_version")
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(attributes.get("event_id") or uuid4()),
        "source": attributes.get("source") or source_of(event_type),
        "type": event_type,
        "subject": str(subject),
        "time": (attributes.get("time") or datetime.now(UTC)).isoformat(),
        "datacontenttype": DATA_CONTENT_TYPE,
        "data": normalised,
        "aggregateversion": 1 if version is None else version,
        "correlationid": None if correlation is None else str(correlation),
        "causationid": None if causation is None else str(causation),
        "traceparent": attributes.get("traceparent") or child_traceparent(None),
    }
    present = {name: value for name, value in event.items() if value is not None}
    envelope, _ = decode(json.dumps(present).encode())
    return envelope


class Publisher:
    """One connection and one confirming channel to the broker, for as many events as needed."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or broker_url()
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None

    async def __aenter__(self) -> Publisher:
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            self._exchange = await channel.get_exchange(EVENTS.name, ensure=True)
        except aiormq.exceptions.ChannelNotFoundEntity as error:
            await connection.close()
            raise PublishFailed(
                f"the broker has no {EVENTS.name!r} exchange: declare the topology first "
                "(python -m broker declare)"
            ) from error
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            await connection.close()

    async def publish(
        self, event_type: str, data: Mapping[str, Any], **attributes: Unpack[Attributes]
    ) -> CloudEvent:
        """Build an event (`build_event`), send it, and return it once confirmed."""
        event = build_event(event_type, data, **attributes)
        await self.send(event)
        return event

    async def send(self, *events: CloudEvent) -> None:
        """Publish `events` as they are, all in flight at once; return when all are confirmed."""
        if self._exchange is None:
            raise RuntimeError("use the Publisher in `async with` before sending")
        exchange = self._exchange
        results = await asyncio.gather(
            *(
                exchange.publish(
                    structured_message(
                        event_id=event.id, event_type=event.type, body=encode(event)
                    ),
                    routing_key=event.type,
                )
                for event in events
            ),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise PublishFailed(
                f"{len(failures)} of {len(events)} events were not confirmed by the broker: "
                f"{failures[0]!r}"
            ) from failures[0]


async def publish(
    event_type: str,
    data: Mapping[str, Any],
    *,
    url: str | None = None,
    **attributes: Unpack[Attributes],
) -> CloudEvent:
    """Build an event, publish it on a connection of its own, and return it once confirmed."""
    async with Publisher(url) as publisher:
        return await publisher.publish(event_type, data, **attributes)


def _subject_in(event_type: str, data: Mapping[str, Any]) -> str:
    fields = SUBJECT_FIELDS.get(event_type.split(".", 1)[0], ())
    for field in fields:
        if data.get(field) is not None:
            return str(data[field])
    raise InvalidEvent(f"no subject for {event_type}: pass the id of the aggregate it is about")
