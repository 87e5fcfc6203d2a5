"""What outside programs publishing onto `events` can rely on: idempotence, ordering, DLQ."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.harness import Customer, Stack, authorized, token_for
from tests.support.events import cloud_event, dead_letters, publish
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def test_the_same_event_published_twice_has_one_effect(
    stack: Stack, customer: Customer
) -> None:
    """A foreign order.created for this user, delivered twice: credit is reserved once."""
    order_id = uuid.uuid4()
    event_id = uuid.uuid4()
    body = cloud_event(
        "order.created",
        {
            "order_id": str(order_id),
            "user_id": str(customer.id),
            "items": [{"sku": "DUP", "quantity": 1, "unit_price": 2_500}],
            "total": 2_500,
        },
        subject=order_id,
        version=1,
        event_id=event_id,
    )
    await publish(stack.amqp_url, "order.created", body, str(event_id))
    await publish(stack.amqp_url, "order.created", body, str(event_id))
    # A marker event after both copies: once it is applied, both copies have been handled.
    marker = await customer.place_order(1)
    await customer.order_reaches(marker["id"], "confirmed")

    assert (await customer.me())["credit_reserved"] == 2_500 + 1


async def test_user_events_out_of_order_leave_the_replica_at_the_highest_version(
    stack: Stack,
) -> None:
    user_id = uuid.uuid4()

    def user_event(event_type: str, version: int, **data: object) -> bytes:
        return cloud_event(
            event_type, {"user_id": str(user_id), **data}, subject=user_id, version=version
        )

    registered = user_event(
        "user.registered", 1, email="late@example.com", name="First", credit_limit=100
    )
    for event_type, body in [
        ("user.updated", user_event("user.updated", 4, name="Newest")),
        ("user.updated", user_event("user.updated", 2, name="Older")),
        ("user.registered", registered),
        ("user.deactivated", user_event("user.deactivated", 3)),
    ]:
        await publish(stack.amqp_url, event_type, body)

    async with authorized(stack.order_svc.url, token_for(user_id)) as orders:
        order = (
            await orders.post(
                "/orders", json={"items": [{"sku": "X", "quantity": 1, "unit_price": 1}]}
            )
        ).json()

        async def replica_at_version_4() -> dict[str, object] | None:
            customer = (await orders.get(f"/orders/{order['id']}")).json()["customer"]
            return customer if customer and customer["version"] == 4 else None

        replica = await eventually(replica_at_version_4, what="replica at version 4")

    assert replica == {"id": str(user_id), "name": "Newest", "status": "deactivated", "version": 4}


async def test_a_malformed_message_is_dead_lettered_and_the_next_one_is_processed(
    stack: Stack,
) -> None:
    malformed_id = str(uuid.uuid4())
    await publish(stack.amqp_url, "user.updated", b"{this is not json", malformed_id)
    user_id = uuid.uuid4()
    valid = cloud_event(
        "user.updated", {"user_id": str(user_id), "name": "After"}, subject=user_id, version=2
    )
    await publish(stack.amqp_url, "user.updated", valid)

    async def dead_lettered() -> list[object]:
        messages = await dead_letters(stack.amqp_url, "order_svc.events.dlq")
        return [m for m in messages if m.message_id == malformed_id]

    (message,) = await eventually(dead_lettered, what="malformed message in the DLQ")
    assert "not a valid CloudEvent" in str(message.headers["x-dead-letter-reason"])  # type: ignore[attr-defined]

    async with authorized(stack.order_svc.url, token_for(user_id)) as orders:
        order = (
            await orders.post(
                "/orders", json={"items": [{"sku": "X", "quantity": 1, "unit_price": 1}]}
            )
        ).json()

        async def applied() -> bool:
            body = (await orders.get(f"/orders/{order['id']}")).json()
            return bool(body["customer"]) and body["customer"]["name"] == "After"

        await eventually(applied, what="the valid event after the malformed one")


async def test_an_event_with_invalid_data_is_dead_lettered(stack: Stack) -> None:
    event_id = uuid.uuid4()
    body = cloud_event(
        "user.credit_reserved",
        {"user_id": "not-a-uuid", "order_id": str(uuid.uuid4()), "amount": -5},
        subject=uuid.uuid4(),
        version=2,
        event_id=event_id,
    )
    await publish(stack.amqp_url, "user.credit_reserved", body, str(event_id))

    async def dead_lettered() -> list[object]:
        messages = await dead_letters(stack.amqp_url, "order_svc.events.dlq")
        return [m for m in messages if m.message_id == str(event_id)]

    (message,) = await eventually(dead_lettered, what="invalid event in the DLQ")
    reason = str(message.headers["x-dead-letter-reason"])  # type: ignore[attr-defined]
    assert "invalid data for user.credit_reserved" in reason


async def test_readiness_reports_everything_a_whole_service_runs(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        for service in (stack.user_svc, stack.order_svc):
            response = await client.get(f"{service.url}/readyz")
            assert response.json()["checks"] == {
                "database": True,
                "token_keys": True,
                "broker": True,
                "consumer": True,
            }
