"""How a CloudEvent travels in an AMQP 0-9-1 message: the CloudEvents AMQP protocol binding.

Written: always structured mode, the event in the JSON format as the body, content type
`application/cloudevents+json`, persistent, AMQP `message_id` = the event id and AMQP `type` = the
event type (`structured_message`; the relay and the publishing kit both use it).

Read (`as_structured`), either content mode, as the binding tells them apart:

- **structured** when the content type is `application/cloudevents+json`, with any parameters;
  another CloudEvents format (`application/cloudevents-batch+json`, `+avro`, ...) is refused;
- **binary** for any other content type: `data` is the body, its media type (`datacontenttype`)
  the content type, every other attribute an application property, which AMQP 0-9-1 calls a
  header. The binding names them `cloudEvents:<attribute>`; `cloudEvents_<attribute>` (its
  JMS-friendly spelling, which the official Python SDK's `amqp` module writes) and
  `ce-<attribute>` (the RabbitMQ binding, the SDK's `rabbitmq` module) are read alike. Values come
  as AMQP types or as their canonical strings, and both are taken: `time` as a timestamp, as
  milliseconds since the epoch (AMQP 1.0's timestamp, as the SDK writes it) or RFC 3339 text;
  `aggregateversion` as an integer or its decimal text.

A message without a content type is binary when it carries attribute headers, and is otherwise
judged by its body as structured. Binary-mode events are rewritten into the JSON format, so both
modes then meet exactly the same validation (`shared.messaging.envelope.decode`); anything that
is a CloudEvent in neither mode raises `InvalidEvent` and is dead-lettered with the reason.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import aio_pika

from shared.messaging import media_types
from shared.messaging.envelope import CONTENT_TYPE, InvalidEvent

ATTRIBUTE_PREFIXES = ("cloudevents:", "cloudevents_", "ce-")
# Attribute headers are copied onto retried and dead-lettered messages, and a header frame larger
# than the broker's frame size closes the whole connection: beyond this many bytes of attribute
# headers, a message is refused (no valid event comes near it) and forwarded without them.
MAX_ATTRIBUTE_HEADER_BYTES = 16 * 1024
# Attributes of the contract whose type is not String (CloudEvents type system).
_TIMESTAMPS = frozenset({"time"})
_INTEGERS = frozenset({"aggregateversion"})
_CANONICAL_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_CLOUDEVENTS_MEDIA_TYPES = "application/cloudevents"
_NOT_HEADERS = frozenset({"datacontenttype", "data", "data_base64"})


def structured_message(*, event_id: UUID | str, event_type: str, body: bytes) -> aio_pika.Message:
    """The AMQP message of an event already encoded in the JSON format (`body`)."""
    return aio_pika.Message(
        body=body,
        message_id=str(event_id),
        type=event_type,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def as_structured(
    body: bytes, content_type: str | None, headers: Mapping[str, Any] | None
) -> bytes:
    """The event of an AMQP message in the JSON format, whichever mode it came in.

    Raises `InvalidEvent` for a message that is a CloudEvent in neither mode; a structured body is
    returned as it is, for `decode` to judge.
    """
    if content_type == CONTENT_TYPE:
        return body
    attributes = _attributes(headers or {})
    if content_type is None:
        return _binary_to_structured(body, None, attributes) if attributes else body
    kind = media_types.essence(content_type)
    if kind is None:
        raise InvalidEvent(f"content type {content_type[:100]!r} is not a media type")
    if kind.startswith(_CLOUDEVENTS_MEDIA_TYPES):
        if kind != CONTENT_TYPE:
            raise InvalidEvent(f"event format {kind[:100]!r} is not supported, only {CONTENT_TYPE}")
        return body
    if not attributes:
        raise InvalidEvent(
            f"content type {content_type[:100]!r} is not {CONTENT_TYPE}, and no CloudEvents "
            "attributes are in the headers (cloudEvents:<attribute>) for binary mode"
        )
    return _binary_to_structured(body, content_type, attributes)


def attribute_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The headers holding a binary-mode event's attributes, to travel with a copy of it.

    None of them when they exceed `MAX_ATTRIBUTE_HEADER_BYTES`: such a message was refused,
    and carrying them could make the copy's header frame too large for the broker.
    """
    chosen = _prefixed(headers or {})
    return chosen if _size(chosen) <= MAX_ATTRIBUTE_HEADER_BYTES else {}


def _prefixed(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in headers.items()
        if name.lower().startswith(ATTRIBUTE_PREFIXES)
    }


def _attributes(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute name -> header value, from every header named with a binding's prefix."""
    prefixed = _prefixed(headers)
    if _size(prefixed) > MAX_ATTRIBUTE_HEADER_BYTES:
        raise InvalidEvent(
            f"the CloudEvents attribute headers exceed {MAX_ATTRIBUTE_HEADER_BYTES} bytes"
        )
    found: dict[str, Any] = {}
    for name, value in prefixed.items():
        lowered = name.lower()
        prefix = next(p for p in ATTRIBUTE_PREFIXES if lowered.startswith(p))
        attribute = lowered[len(prefix) :]
        if attribute in found and found[attribute] != value:
            raise InvalidEvent(f"attribute {attribute[:100]!r} is given twice, with two values")
        found[attribute] = value
    return found


def _binary_to_structured(
    body: bytes, content_type: str | None, attributes: Mapping[str, Any]
) -> bytes:
    event = {
        name: _json_value(name, value)
        for name, value in attributes.items()
        # Carried by the content type and the body in binary mode, never by headers.
        if name not in _NOT_HEADERS and value is not None
    }
    if content_type is not None:
        event["datacontenttype"] = content_type
        if not media_types.is_json(content_type):
            raise InvalidEvent(
                f"data of content type {content_type[:100]!r} is not JSON: an event's data is "
                "a JSON object (application/json)"
            )
    if body:
        try:
            event["data"] = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidEvent(f"data is not UTF-8 JSON: {error}"[:1000]) from error
    return json.dumps(event).encode()


def _json_value(attribute: str, value: object) -> object:
    """A header value as the JSON format writes the attribute: its canonical form."""
    if (
        attribute in _TIMESTAMPS
        and isinstance(value, int | datetime)
        and not isinstance(value, bool)
    ):
        return _timestamp(attribute, value)
    if attribute in _INTEGERS and isinstance(value, str) and _CANONICAL_INTEGER.fullmatch(value):
        return int(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()  # CloudEvents Binary
    raise InvalidEvent(
        f"attribute {attribute[:100]!r} is an AMQP {type(value).__name__}, "
        "which is no CloudEvents type"
    )


def _timestamp(attribute: str, value: int | datetime) -> str:
    try:
        moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError) as error:
        raise InvalidEvent(f"attribute {attribute!r} is not a timestamp: {value!r}") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # AMQP 0-9-1 timestamps are UTC
    return moment.isoformat()


def _size(headers: Mapping[str, Any]) -> int:
    return sum(len(str(name)) + len(str(value)) for name, value in headers.items())
