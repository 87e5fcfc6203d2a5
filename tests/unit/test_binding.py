"""The CloudEvents AMQP binding: which messages are events in which content mode, and how a
binary-mode message becomes the same event as its structured twin."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from shared.messaging.binding import (
    MAX_ATTRIBUTE_HEADER_BYTES,
    as_structured,
    attribute_headers,
    structured_message,
)
from shared.messaging.envelope import CONTENT_TYPE, InvalidEvent, decode

EVENT_ID = "00000000-0000-4000-8000-0000000000e1"
USER_ID = "00000000-0000-4000-8000-0000000000a1"
DATA = {"user_id": USER_ID, "name": "Grace"}
STRUCTURED = {
    "specversion": "1.0",
    "id": EVENT_ID,
    "source": "/elsewhere",
    "type": "user.updated",
    "subject": USER_ID,
    "time": "2024-06-01T12:00:00+00:00",
    "datacontenttype": "application/json",
    "aggregateversion": 2,
    "data": DATA,
}


def binary_headers(prefix: str = "cloudEvents:", **values: Any) -> dict[str, Any]:
    attributes = {
        name: value for name, value in STRUCTURED.items() if name not in {"data", "datacontenttype"}
    }
    return {f"{prefix}{name}": value for name, value in (attributes | values).items()}


def body(data: Any = DATA) -> bytes:
    return json.dumps(data).encode()


def event_of(structured: bytes) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(structured)
    return event


def test_a_structured_message_is_its_body() -> None:
    message = body(STRUCTURED)

    assert as_structured(message, CONTENT_TYPE, None) is message


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+json; charset=utf-8",
        "application/cloudevents+json;charset=UTF-8",
        "Application/CloudEvents+JSON",
    ],
)
def test_a_structured_content_type_with_parameters_or_in_capitals_is_structured(
    content_type: str,
) -> None:
    message = body(STRUCTURED)

    assert as_structured(message, content_type, binary_headers()) is message


@pytest.mark.parametrize(
    "content_type",
    ["application/cloudevents-batch+json", "application/cloudevents+avro"],
)
def test_another_cloudevents_format_is_refused(content_type: str) -> None:
    with pytest.raises(InvalidEvent, match=r"event format .* is not supported"):
        as_structured(body([STRUCTURED]), content_type, None)


def test_a_message_without_a_content_type_or_attribute_headers_is_judged_by_its_body() -> None:
    message = body(STRUCTURED)

    assert as_structured(message, None, {"x-other": 1}) is message


def test_another_content_type_without_attribute_headers_is_no_cloudevent() -> None:
    with pytest.raises(InvalidEvent, match="no CloudEvents attributes are in the headers"):
        as_structured(body(STRUCTURED), "application/json", {"x-other": 1})


def test_a_content_type_that_is_no_media_type_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="is not a media type"):
        as_structured(body(), "json please", binary_headers())


@pytest.mark.parametrize("prefix", ["cloudEvents:", "cloudEvents_", "ce-", "CloudEvents:"])
def test_a_binary_mode_message_is_the_same_event_as_its_structured_twin(prefix: str) -> None:
    structured = as_structured(body(), "application/json", binary_headers(prefix))

    assert event_of(structured) == STRUCTURED


def test_binary_mode_data_may_declare_its_content_type_with_parameters() -> None:
    structured = as_structured(body(), "application/json; charset=utf-8", binary_headers())

    envelope, _ = decode(structured)
    assert envelope.datacontenttype == "application/json; charset=utf-8"


def test_binary_mode_without_a_content_type_takes_its_data_as_json() -> None:
    envelope, data = decode(as_structured(body(), None, binary_headers()))

    assert envelope.datacontenttype is None
    assert data.model_dump(mode="json") == DATA


@pytest.mark.parametrize(
    "value",
    [
        1_717_243_200_000,  # AMQP 1.0 timestamp: milliseconds since the epoch
        datetime(2024, 6, 1, 12, 0, tzinfo=UTC),  # AMQP 0-9-1 timestamp
        "2024-06-01T12:00:00Z",  # canonical string
    ],
)
def test_binary_mode_time_is_taken_as_a_timestamp_or_its_canonical_string(value: object) -> None:
    envelope, _ = decode(as_structured(body(), "application/json", binary_headers(time=value)))

    assert envelope.time == datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", [2, "2"])
def test_binary_mode_aggregateversion_is_an_integer_or_its_canonical_string(value: object) -> None:
    header = binary_headers(aggregateversion=value)

    envelope, _ = decode(as_structured(body(), "application/json", header))

    assert envelope.aggregateversion == 2


@pytest.mark.parametrize("value", ["02", "2.0", " 2", "two"])
def test_binary_mode_aggregateversion_in_no_canonical_form_is_invalid(value: str) -> None:
    header = binary_headers(aggregateversion=value)

    with pytest.raises(InvalidEvent, match="aggregateversion"):
        decode(as_structured(body(), "application/json", header))


def test_binary_mode_keeps_extension_attributes_with_their_types() -> None:
    headers = binary_headers() | {
        "cloudEvents:tenant": "acme",
        "cloudEvents:priority": 3,
        "cloudEvents:sampled": True,
        "cloudEvents:digest": b"\x00\xff",
    }

    envelope, _ = decode(as_structured(body(), "application/json", headers))

    assert envelope.model_extra == {
        "tenant": "acme",
        "priority": 3,
        "sampled": True,
        "digest": base64.b64encode(b"\x00\xff").decode(),
    }


def test_binary_mode_ignores_headers_of_other_applications() -> None:
    headers = binary_headers() | {"x-attempt": 2, "traceparent-ish": "no"}

    assert event_of(as_structured(body(), "application/json", headers)) == STRUCTURED


@pytest.mark.parametrize("value", [1.5, Decimal("1.5"), [1], {"a": 1}])
def test_binary_mode_attribute_of_no_cloudevents_type_is_invalid(value: object) -> None:
    headers = binary_headers() | {"cloudEvents:tenant": value}

    with pytest.raises(InvalidEvent, match="'tenant' is an AMQP"):
        as_structured(body(), "application/json", headers)


def test_binary_mode_attribute_given_twice_with_two_values_is_invalid() -> None:
    headers = binary_headers() | {"ce-id": "00000000-0000-4000-8000-0000000000e2"}

    with pytest.raises(InvalidEvent, match="'id' is given twice"):
        as_structured(body(), "application/json", headers)


def test_binary_mode_attribute_given_twice_with_one_value_is_fine() -> None:
    headers = binary_headers() | binary_headers("cloudEvents_")

    assert event_of(as_structured(body(), "application/json", headers)) == STRUCTURED


def test_binary_mode_data_of_a_content_type_that_is_not_json_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match="is not JSON"):
        as_structured(b"Grace", "text/plain", binary_headers())


@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe{}", b'"\xc3\x28"'])
def test_binary_mode_data_that_is_not_utf8_json_is_invalid(payload: bytes) -> None:
    with pytest.raises(InvalidEvent, match="data is not UTF-8 JSON"):
        as_structured(payload, "application/json", binary_headers())


def test_binary_mode_without_data_is_an_event_missing_its_data() -> None:
    with pytest.raises(InvalidEvent, match="data: Field required"):
        decode(as_structured(b"", "application/json", binary_headers()))


def test_binary_mode_missing_a_required_attribute_is_invalid_naming_it() -> None:
    headers = binary_headers()
    del headers["cloudEvents:subject"]

    with pytest.raises(InvalidEvent, match="subject: Field required"):
        decode(as_structured(body(), "application/json", headers))


def test_binary_mode_attribute_headers_over_the_cap_are_invalid() -> None:
    headers = binary_headers() | {"cloudEvents:padding": "x" * MAX_ATTRIBUTE_HEADER_BYTES}

    with pytest.raises(InvalidEvent, match="attribute headers exceed"):
        as_structured(body(), "application/json", headers)


def test_a_copy_carries_the_attribute_headers_and_nothing_else() -> None:
    headers = binary_headers() | {"x-attempt": 2, "other": "no"}

    assert attribute_headers(headers) == binary_headers()


def test_a_copy_carries_no_attribute_headers_over_the_cap() -> None:
    headers = binary_headers() | {"ce-padding": "x" * MAX_ATTRIBUTE_HEADER_BYTES}

    assert attribute_headers(headers) == {}


def test_a_structured_message_carries_the_event_as_the_contract_says() -> None:
    event_id = UUID(EVENT_ID)

    message = structured_message(event_id=event_id, event_type="user.updated", body=b"{}")

    assert (message.message_id, message.type, message.content_type) == (
        EVENT_ID,
        "user.updated",
        CONTENT_TYPE,
    )
    assert message.delivery_mode == 2
    assert message.body == b"{}"
