"""The CloudEvents envelope: how events are wrapped, encoded, and which bodies are refused."""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

import pytest

from shared.events import DomainEvent, OrderCreated, OrderItem, UserCreditReserved
from shared.messaging.envelope import (
    TRACEPARENT_PATTERN,
    CloudEvent,
    InvalidEvent,
    child_traceparent,
    decode,
    encode,
    wrap,
)

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
ORDER_ID = UUID("00000000-0000-4000-8000-0000000000b1")
PARENT_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def credit_reserved(*, correlation_id: UUID | None = ORDER_ID) -> DomainEvent:
    return DomainEvent(
        data=UserCreditReserved(user_id=USER_ID, order_id=ORDER_ID, amount=300),
        subject=USER_ID,
        aggregate_version=4,
        correlation_id=correlation_id,
    )


def a_cause() -> CloudEvent:
    """An `order.created` as user_svc would receive it, the cause of a reservation."""
    return wrap(
        DomainEvent(
            data=OrderCreated(
                order_id=ORDER_ID,
                user_id=USER_ID,
                items=[OrderItem(sku="APPLE", quantity=2, unit_price=150)],
                total=300,
            ),
            subject=ORDER_ID,
            aggregate_version=1,
            correlation_id=ORDER_ID,
        ),
        source="/order_svc",
        traceparent=PARENT_TRACEPARENT,
    )


def valid_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(encode(wrap(credit_reserved(), source="/user_svc")))
    return body


def as_bytes(body: Any) -> bytes:
    return json.dumps(body).encode()


def test_wrapping_builds_a_cloudevent_1_0_of_the_event_type_about_its_aggregate() -> None:
    envelope = wrap(credit_reserved(), source="/user_svc")

    assert envelope.specversion == "1.0"
    assert envelope.type == "user.credit_reserved"
    assert envelope.source == "/user_svc"
    assert envelope.subject == str(USER_ID)
    assert envelope.datacontenttype == "application/json"
    assert envelope.aggregateversion == 4
    assert envelope.time.tzinfo is not None
    assert envelope.data == {"user_id": str(USER_ID), "order_id": str(ORDER_ID), "amount": 300}


def test_wrapping_without_a_cause_starts_a_new_w3c_trace() -> None:
    envelope = wrap(credit_reserved(), source="/user_svc")

    assert envelope.traceparent is not None
    assert re.fullmatch(TRACEPARENT_PATTERN, envelope.traceparent)
    assert envelope.causationid is None


def test_wrapping_gives_every_event_its_own_id() -> None:
    first = wrap(credit_reserved(), source="/user_svc")
    second = wrap(credit_reserved(), source="/user_svc")

    assert first.id != second.id


def test_wrapping_with_a_cause_takes_causation_id_from_the_cause() -> None:
    cause = a_cause()

    envelope = wrap(credit_reserved(), source="/user_svc", cause=cause)

    assert envelope.causationid == str(cause.id)


def test_wrapping_with_a_cause_inherits_its_correlation_id_when_the_event_has_none() -> None:
    cause = a_cause()

    envelope = wrap(credit_reserved(correlation_id=None), source="/user_svc", cause=cause)

    assert envelope.correlationid == str(ORDER_ID)


def test_wrapping_with_a_cause_continues_the_causes_trace() -> None:
    cause = a_cause()
    assert cause.traceparent is not None

    envelope = wrap(credit_reserved(), source="/user_svc", cause=cause)

    assert envelope.traceparent is not None
    assert envelope.traceparent.split("-")[1] == cause.traceparent.split("-")[1]
    assert envelope.traceparent.split("-")[2] != cause.traceparent.split("-")[2]


def test_a_child_traceparent_keeps_the_trace_id_with_a_new_span_id() -> None:
    child = child_traceparent(PARENT_TRACEPARENT)

    version, trace_id, span_id, flags = child.split("-")
    assert re.fullmatch(TRACEPARENT_PATTERN, child)
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "01")
    assert span_id != "b7ad6b7169203331"


def test_a_child_traceparent_without_a_parent_is_a_new_w3c_trace() -> None:
    first = child_traceparent(None)
    second = child_traceparent(None)

    assert re.fullmatch(TRACEPARENT_PATTERN, first)
    assert first.split("-")[1] != second.split("-")[1]


def test_decoding_an_encoded_event_gives_back_the_envelope_and_its_data() -> None:
    envelope = wrap(credit_reserved(), source="/user_svc", cause=a_cause())

    decoded, data = decode(encode(envelope))

    assert decoded == envelope
    assert data == UserCreditReserved(user_id=USER_ID, order_id=ORDER_ID, amount=300)


def test_encoding_leaves_out_absent_attributes() -> None:
    envelope = wrap(credit_reserved(), source="/user_svc")

    assert "causationid" not in json.loads(encode(envelope))


def test_decoding_keeps_unknown_extension_attributes() -> None:
    body = valid_body() | {"tenant": "acme"}

    envelope, _ = decode(as_bytes(body))

    assert envelope.model_extra == {"tenant": "acme"}


def test_decoding_bytes_that_are_not_json_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent, match="Invalid JSON") as raised:
        decode(b"this is not json")

    assert raised.value.reason.startswith("not a valid CloudEvent")


def test_decoding_bytes_that_are_not_utf8_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent, match="not a valid CloudEvent"):
        decode(b'{"specversion": "\xff\xfe"}')


def test_decoding_a_json_array_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent, match="not a valid CloudEvent"):
        decode(as_bytes([valid_body()]))


@pytest.mark.parametrize(
    "attribute",
    ["specversion", "id", "source", "type", "subject", "time", "data", "aggregateversion"],
)
def test_decoding_an_event_missing_a_required_attribute_is_an_invalid_event_naming_it(
    attribute: str,
) -> None:
    body = valid_body()
    del body[attribute]

    with pytest.raises(InvalidEvent, match=f"{attribute}: Field required"):
        decode(as_bytes(body))


def test_decoding_an_event_of_another_specversion_is_an_invalid_event() -> None:
    body = valid_body() | {"specversion": "0.3"}

    with pytest.raises(InvalidEvent, match="specversion"):
        decode(as_bytes(body))


def test_decoding_an_event_of_an_unknown_type_is_an_invalid_event() -> None:
    body = valid_body() | {"type": "user.teleported"}

    with pytest.raises(InvalidEvent, match=r"unknown event type 'user\.teleported'"):
        decode(as_bytes(body))


def test_decoding_an_event_whose_id_is_not_a_uuid_is_an_invalid_event() -> None:
    body = valid_body() | {"id": "event-42"}

    with pytest.raises(InvalidEvent, match="id: "):
        decode(as_bytes(body))


def test_decoding_an_event_with_a_malformed_traceparent_is_an_invalid_event() -> None:
    body = valid_body() | {"traceparent": "not-a-trace"}

    with pytest.raises(InvalidEvent, match="traceparent"):
        decode(as_bytes(body))


def test_decoding_an_event_with_a_negative_amount_is_an_invalid_event() -> None:
    body = valid_body()
    body["data"]["amount"] = -1

    with pytest.raises(InvalidEvent, match=r"invalid data for user\.credit_reserved: amount"):
        decode(as_bytes(body))


def test_decoding_an_event_whose_data_misses_a_field_is_an_invalid_event() -> None:
    body = valid_body()
    del body["data"]["order_id"]

    with pytest.raises(InvalidEvent, match="order_id: Field required"):
        decode(as_bytes(body))


def test_decoding_an_event_whose_data_has_an_unknown_field_is_an_invalid_event() -> None:
    body = valid_body()
    body["data"]["coupon"] = "FREE"

    with pytest.raises(InvalidEvent, match="coupon: Extra inputs are not permitted"):
        decode(as_bytes(body))


def test_decoding_an_event_without_a_datacontenttype_takes_its_data_as_json() -> None:
    body = valid_body()
    del body["datacontenttype"]

    envelope, data = decode(as_bytes(body))

    assert envelope.datacontenttype is None
    assert data == UserCreditReserved(user_id=USER_ID, order_id=ORDER_ID, amount=300)


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", 'APPLICATION/JSON;Charset="UTF-8"', "text/json"],
)
def test_decoding_keeps_a_json_datacontenttype_with_parameters_as_written(
    content_type: str,
) -> None:
    envelope, _ = decode(as_bytes(valid_body() | {"datacontenttype": content_type}))

    assert envelope.datacontenttype == content_type


@pytest.mark.parametrize("content_type", ["text/plain", "application/json\n", "json", ""])
def test_decoding_an_event_whose_data_is_not_declared_json_is_an_invalid_event(
    content_type: str,
) -> None:
    with pytest.raises(InvalidEvent, match="datacontenttype must be a JSON media type"):
        decode(as_bytes(valid_body() | {"datacontenttype": content_type}))


@pytest.mark.parametrize("source", ["/my_program", "https://example.com/x", "urn:a:b", "/%7E"])
def test_decoding_accepts_any_uri_reference_as_source(source: str) -> None:
    envelope, _ = decode(as_bytes(valid_body() | {"source": source}))

    assert envelope.source == source


@pytest.mark.parametrize("source", ["", "/a b", "/user_svc\n", "/%G0", "/é"])
def test_decoding_an_event_whose_source_is_no_uri_reference_is_an_invalid_event(
    source: str,
) -> None:
    with pytest.raises(InvalidEvent, match="source must be a URI-reference"):
        decode(as_bytes(valid_body() | {"source": source}))
