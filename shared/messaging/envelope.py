"""The CloudEvents 1.0 envelope in the JSON event format, and the rules every event must meet.

Outgoing events are wrapped here exactly once, when the unit of work writes them to the outbox,
so the bytes the relay publishes (and republishes after a crash) never change: the same `id`
on every redelivery. Incoming events, in the JSON format (a binary-mode message is rewritten into
it first, by `shared.messaging.binding`), are decoded here into a validated envelope and a
validated `data` model, or rejected with an `InvalidEvent` whose reason goes to the dead-letter
queue. The publishing kit (`shared.messaging.publish`) checks what it builds with the same
`decode`, so an event it accepts is one every consumer accepts.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from shared.events import EVENT_TYPES, DomainEvent, EventData
from shared.messaging import media_types

CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
# A URI-reference (RFC 3986), as CloudEvents requires of `source`: its characters only, unreserved,
# reserved or percent-encoded, at least one. The services use `/<service>`; any other program
# publishing events names itself, and its events are consumed alike.
SOURCE_PATTERN = r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$"

_SOURCE = re.compile(SOURCE_PATTERN[1:-1])
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}")


def _rfc3339(value: object) -> object:
    """Only an RFC 3339 string is a CloudEvent `time` (pydantic would also take epoch numbers)."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("time must be an RFC 3339 timestamp")
    return datetime.fromisoformat(value)


def _uri_reference(value: str) -> str:
    if not _SOURCE.fullmatch(value):
        raise ValueError("source must be a URI-reference (RFC 3986), such as /my_program")
    return value


def _json_media_type(value: str | None) -> str | None:
    if value is not None and not media_types.is_json(value):
        raise ValueError("datacontenttype must be a JSON media type, such as application/json")
    return value


class CloudEvent(BaseModel):
    """The envelope attributes of the contract; other extension attributes are allowed and kept."""

    # Strict: a version of `true` or `"7"`, or a time given as a number, is a producer bug to
    # surface in the DLQ, not to guess around.
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    specversion: Literal["1.0"]
    id: UUID
    source: Annotated[str, AfterValidator(_uri_reference)]
    type: str
    subject: Annotated[str, Field(min_length=1)]
    time: Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
    # Any JSON media type, parameters allowed; absent means `application/json` (the CloudEvents
    # JSON format, section 3.1). Producers here always write `DATA_CONTENT_TYPE`.
    datacontenttype: Annotated[str | None, AfterValidator(_json_media_type)] = None
    data: dict[str, Any]
    aggregateversion: Annotated[int, Field(ge=0, le=2**31 - 1)]
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: Annotated[str | None, Field(pattern=TRACEPARENT_PATTERN)] = None


class InvalidEvent(Exception):
    """A message that can never be processed, whatever the retries: it belongs in the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def child_traceparent(parent: str | None) -> str:
    """A W3C traceparent continuing `parent`'s trace with a new span, or starting a new trace."""
    span_id = secrets.token_hex(8)
    if parent is not None:
        version, trace_id, _, flags = parent.split("-")
        return f"{version}-{trace_id}-{span_id}-{flags}"
    return f"00-{secrets.token_hex(16)}-{span_id}-01"


def wrap(
    event: DomainEvent,
    *,
    source: str,
    cause: CloudEvent | None = None,
    traceparent: str | None = None,
) -> CloudEvent:
    """Build the envelope of `event`, linking it to the event that caused it (if any).

    `traceparent` is the context of the span that raised the event; without one, the event gets
    a span of its own in the cause's trace, or a new trace.
    """
    correlation = event.correlation_id or (cause.correlationid if cause else None)
    return CloudEvent(
        specversion="1.0",
        id=uuid4(),
        source=source,
        type=event.type,
        subject=str(event.subject),
        time=datetime.now(UTC),
        datacontenttype=DATA_CONTENT_TYPE,
        data=event.data.model_dump(mode="json"),
        aggregateversion=event.aggregate_version,
        correlationid=str(correlation) if correlation else None,
        causationid=str(cause.id) if cause else None,
        traceparent=traceparent or child_traceparent(cause.traceparent if cause else None),
    )


def encode(event: CloudEvent) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def decode(body: bytes) -> tuple[CloudEvent, EventData]:
    """Validate `body` as a CloudEvent of a known type with valid `data`, or raise InvalidEvent."""
    try:
        envelope = CloudEvent.model_validate_json(body)
    except ValidationError as error:
        raise InvalidEvent(f"not a valid CloudEvent: {summarise(error)}") from error
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        raise InvalidEvent(f"unknown event type {envelope.type[:100]!r}")
    try:
        data = model.model_validate(envelope.data)
    except ValidationError as error:
        raise InvalidEvent(f"invalid data for {envelope.type}: {summarise(error)}") from error
    return envelope, data


def summarise(error: ValidationError) -> str:
    """One bounded line naming every validation error and where it is."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['msg']}" for e in error.errors()
    )[:1000]
