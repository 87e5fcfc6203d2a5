"""The credit saga, end to end: both services as processes, over HTTP and RabbitMQ."""

from __future__ import annotations

import pytest

from tests.e2e.harness import CREDIT_LIMIT, Customer, Stack, register
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def test_order_within_credit_is_confirmed_and_reserves_its_total(customer: Customer) -> None:
    order = await customer.place_order(3_000)
    assert order["status"] == "pending"

    confirmed = await customer.order_reaches(order["id"], "confirmed")

    assert confirmed["version"] == 2
    assert (await customer.me())["credit_reserved"] == 3_000


async def test_order_over_the_limit_is_rejected_for_insufficient_credit(customer: Customer) -> None:
    order = await customer.place_order(CREDIT_LIMIT + 1)

    rejected = await customer.order_reaches(order["id"], "rejected")

    assert rejected["reason"] == "insufficient_credit"
    assert (await customer.me())["credit_reserved"] == 0


async def test_orders_are_rejected_once_their_sum_exceeds_the_limit(customer: Customer) -> None:
    first = await customer.place_order(CREDIT_LIMIT - 100)
    await customer.order_reaches(first["id"], "confirmed")

    second = await customer.place_order(101)

    assert (await customer.order_reaches(second["id"], "rejected"))["reason"] == (
        "insufficient_credit"
    )
    assert (await customer.me())["credit_reserved"] == CREDIT_LIMIT - 100


async def test_cancelling_a_confirmed_order_releases_its_credit(customer: Customer) -> None:
    order = await customer.order_reaches((await customer.place_order(5_000))["id"], "confirmed")

    cancelled = await customer.cancel(order)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    async def released() -> bool:
        return (await customer.me())["credit_reserved"] == 0

    await eventually(released, what="credit released")


async def test_cancelling_a_pending_order_never_leaves_credit_reserved(customer: Customer) -> None:
    orders = [await customer.place_order(1_000) for _ in range(5)]
    for order in orders:
        response = await customer.cancel(order)
        # The saga may have confirmed it already; cancelling a confirmed order is fine too.
        if response.status_code == 412:
            response = await customer.cancel(await customer.order(order["id"]))
        assert response.status_code == 200, response.text
    keeper = await customer.place_order(700)
    await customer.order_reaches(keeper["id"], "confirmed")

    async def only_keeper_reserved() -> bool:
        return (await customer.me())["credit_reserved"] == 700

    await eventually(only_keeper_reserved, what="credit of cancelled orders released")
    for order in orders:
        assert (await customer.order(order["id"]))["status"] == "cancelled"


async def test_a_deactivated_users_new_order_is_rejected_as_user_inactive(stack: Stack) -> None:
    customer = await register(stack)
    me = await customer.me()
    deactivated = await customer.users.post(
        f"/users/{customer.id}/deactivate", headers={"If-Match": f'"{me["version"]}"'}
    )
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["status"] == "deactivated"

    order = await customer.place_order(100)

    assert (await customer.order_reaches(order["id"], "rejected"))["reason"] == "user_inactive"
    await customer.close()


async def test_cancelling_a_rejected_order_is_a_conflict(customer: Customer) -> None:
    order = await customer.place_order(CREDIT_LIMIT + 1)
    rejected = await customer.order_reaches(order["id"], "rejected")

    response = await customer.cancel(rejected)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


async def test_the_order_carries_the_customer_replica(customer: Customer) -> None:
    order = await customer.place_order(10)

    async def has_customer() -> dict[str, object] | None:
        body = await customer.order(order["id"])
        return body["customer"] if body["customer"] else None

    replica = await eventually(has_customer, what="customer replica")
    assert replica == {
        "id": str(customer.id),
        "name": "Test User",
        "status": "active",
        "version": 1,
    }
