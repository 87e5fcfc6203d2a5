"""The testing kit's event tap against the real broker (a fresh vhost): it records what is
published from the moment it is open, finds events by type and condition, and says what it saw
when the awaited one does not come."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from broker.tail import TailFailed
from broker.topology import EVENTS, Topology, declare
from shared.messaging.publish import Publisher
from shared.testing.tap import EventTap
from shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def events_url(amqp_url: str) -> str:
    """A vhost with the `events` exchange and no service queue."""
    async with await aio_pika.connect(amqp_url) as connection:
        await declare(await connection.channel(), Topology(exchange=EVENTS, queues=()))
    return amqp_url


@pytest.fixture
async def publisher(events_url: str) -> AsyncIterator[Publisher]:
    async with Publisher(events_url) as publisher:
        yield publisher


def updated(user_id: uuid.UUID, name: str) -> dict[str, str]:
    return {"user_id": str(user_id), "name": name}


async def test_the_tap_finds_the_event_of_a_type_matching_a_condition(
    events_url: str, publisher: Publisher
) -> None:
    user_id = uuid.uuid4()
    async with EventTap(events_url) as tap:
        await publisher.publish("user.updated", updated(uuid.uuid4(), "Someone else"))
        await publisher.publish("user.deactivated", {"user_id": str(user_id)})
        sent = await publisher.publish("user.updated", updated(user_id, "Ada"))

        found = await tap.wait_for(
            "user.updated", where=lambda event: event["data"]["user_id"] == str(user_id)
        )

    assert found["id"] == str(sent.id)
    assert found["data"] == updated(user_id, "Ada")


async def test_the_tap_records_every_event_in_the_order_published(
    events_url: str, publisher: Publisher
) -> None:
    user_id = uuid.uuid4()
    async with EventTap(events_url) as tap:
        for version, name in enumerate(("One", "Two", "Three"), start=2):
            await publisher.publish(
                "user.updated", updated(user_id, name), aggregate_version=version
            )
        await tap.wait_for("user.updated", where=lambda event: event["data"]["name"] == "Three")

    assert [event["aggregateversion"] for event in tap.events] == [2, 3, 4]


async def test_waiting_in_vain_fails_listing_what_the_tap_recorded(
    events_url: str, publisher: Publisher
) -> None:
    user_id = uuid.uuid4()
    async with EventTap(events_url) as tap:
        await publisher.publish("user.deactivated", {"user_id": str(user_id)})
        await tap.wait_for("user.deactivated")

        with pytest.raises(AssertionError) as failure:
            await tap.wait_for("order.confirmed", timeout=0.3)

    assert str(failure.value) == (
        "timed out after 0.3s waiting for an event of type order.confirmed; the last attempt "
        f"failed: recorded 1, the last: user.deactivated (subject {user_id})"
    )


async def test_a_message_the_consumers_would_refuse_is_recorded_with_the_reason(
    events_url: str,
) -> None:
    async with EventTap(events_url) as tap, await aio_pika.connect(events_url) as connection:
        exchange = await (await connection.channel()).get_exchange(EVENTS.name)
        await exchange.publish(
            aio_pika.Message(b"not json", content_type="application/cloudevents+json"),
            routing_key="order.created",
        )

        async def recorded() -> bool:
            return bool(tap.seen)

        await eventually(recorded, what="the message recorded")

    [seen] = tap.seen
    assert (seen.routing_key, seen.event, seen.body) == ("order.created", None, b"not json")
    assert seen.problem is not None
    assert "JSON" in seen.problem
    assert tap.events == []


async def test_a_tap_on_a_broker_without_the_events_exchange_fails_to_open(amqp_url: str) -> None:
    with pytest.raises(TailFailed, match="no 'events' exchange"):
        async with EventTap(amqp_url):
            pass
