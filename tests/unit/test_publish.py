"""The publishing kit's events, built without a broker: valid as a consumer judges them, with
the contract's defaults, and refused before anything is sent when they are not."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from uuid import UUID

import pytest

from shared.events import OrderCreated
from shared.messaging.envelope import TRACEPARENT_PATTERN, decode, encode
from shared.messaging.publish import InvalidEvent, broker_url, build_event

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
ORDER_ID = UUID("00000000-0000-4000-8000-0000000000b1")
ORDER = {
    "order_id": str(ORDER_ID),
    "user_id": str(USER_ID),
    "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": 1500}],
    "total": 3000,
}
REGISTERED = {"user_id": str(USER_ID), "email": "ada@example.com", "name": "Ada", "credit_limit": 5}


def test_a_built_event_is_one_the_consumers_accept_unchanged() -> None:
    event = build_event("order.created", ORDER)

    decoded, data = decode(encode(event))

    assert decoded == event
    assert data == OrderCreated.model_validate(ORDER)


def test_a_built_event_has_the_contracts_envelope_by_default() -> None:
    event = build_event("order.created", ORDER)

    assert (event.specversion, event.type, event.datacontenttype) == (
        "1.0",
        "order.created",
        "application/json",
    )
    assert event.source == "/order_svc"
    assert event.subject == str(ORDER_ID)
    assert event.aggregateversion == 1
    assert event.correlationid == str(ORDER_ID)
    assert event.causationid is None
    assert re.fullmatch(TRACEPARENT_PATTERN, event.traceparent or "")
    assert abs((datetime.now(UTC) - event.time).total_seconds()) < 60


def test_a_user_event_is_about_the_user_from_user_svc_with_no_correlation() -> None:
    event = build_event("user.registered", REGISTERED)

    assert (event.source, event.subject, event.correlationid) == ("/user_svc", str(USER_ID), None)


def test_every_built_event_has_an_id_of_its_own() -> None:
    assert (
        build_event("user.registered", REGISTERED).id
        != build_event("user.registered", REGISTERED).id
    )


def test_given_attributes_replace_the_defaults() -> None:
    event_id = UUID("00000000-0000-4000-8000-0000000000c1")
    at = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    event = build_event(
        "user.registered",
        REGISTERED,
        subject="someone",
        source="https://tests.example/ci",
        aggregate_version=7,
        correlation_id="saga-1",
        causation_id=event_id,
        traceparent=traceparent,
        event_id=event_id,
        time=at,
    )

    assert (event.id, event.time, event.traceparent) == (event_id, at, traceparent)
    assert (event.subject, event.source, event.aggregateversion) == (
        "someone",
        "https://tests.example/ci",
        7,
    )
    assert (event.correlationid, event.causationid) == ("saga-1", str(event_id))


def test_data_given_as_python_values_is_sent_as_json() -> None:
    event = build_event("user.registered", REGISTERED | {"user_id": USER_ID})

    assert json.loads(encode(event))["data"]["user_id"] == str(USER_ID)


def test_an_unknown_type_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(InvalidEvent, match=r"unknown event type 'user\.teleported'.*user\.updated"):
        build_event("user.teleported", {})


def test_invalid_data_is_refused_naming_each_field() -> None:
    items = [{"sku": "A", "quantity": 0, "unit_price": 1}]

    with pytest.raises(InvalidEvent, match=r"invalid data for order\.created: items\.0\.quantity"):
        build_event("order.created", ORDER | {"items": items})


def test_data_with_a_field_the_type_does_not_have_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="coupon: Extra inputs are not permitted"):
        build_event("user.registered", REGISTERED | {"coupon": "FREE"})


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"source": "not a uri"}, "source must be a URI-reference"),
        ({"aggregate_version": -1}, "aggregateversion"),
        ({"traceparent": "nope"}, "traceparent"),
        ({"event_id": "event-42"}, "id: "),
    ],
)
def test_an_envelope_a_consumer_would_refuse_is_refused(
    attributes: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        build_event("user.registered", REGISTERED, **attributes)


def test_the_broker_is_amqp_url_else_the_contracts_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    assert broker_url() == "amqp://guest:guest@127.0.0.1:5672/"

    monkeypatch.setenv("AMQP_URL", "amqp://u:p@broker:5672/v")
    assert broker_url() == "amqp://u:p@broker:5672/v"
