"""inventory_svc over HTTP and in the saga, with the other services as real processes: stock set
by administrators, read by anyone signed in, and reserved for orders all or none, compensated
whichever participant refuses."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.harness import CREDIT_LIMIT, Customer, Stack, register, sign_in_admin
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture
async def admin(stack: Stack) -> AsyncIterator[Customer]:
    signed_in = await sign_in_admin(stack)
    yield signed_in
    await signed_in.close()


def new_sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:12]}"


async def put_stock(
    admin: Customer, sku: str, on_hand: int, *, version: int | None = None
) -> httpx.Response:
    headers = {} if version is None else {"If-Match": f'"{version}"'}
    return await admin.inventory.put(f"/stock/{sku}", json={"on_hand": on_hand}, headers=headers)


async def stocked(admin: Customer, on_hand: int) -> str:
    sku = new_sku()
    response = await put_stock(admin, sku, on_hand)
    assert response.status_code == 201, response.text
    return sku


async def stock_settles(customer: Customer, sku: str, **expected: int) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        stock = await customer.stock(sku)
        return stock if all(stock[k] == v for k, v in expected.items()) else None

    return await eventually(settled, what=f"{sku} at {expected}")


async def credit_settles(customer: Customer, reserved: int) -> None:
    async def settled() -> bool:
        return (await customer.me())["credit_reserved"] == reserved

    await eventually(settled, what=f"credit_reserved {reserved}")


# Setting and reading stock.


async def test_an_administrator_creates_a_skus_stock(admin: Customer) -> None:
    sku = new_sku()

    response = await put_stock(admin, sku, 10)

    assert response.status_code == 201
    assert response.headers["location"] == f"/stock/{sku}"
    assert response.headers["etag"] == '"1"'
    assert response.json() == {
        "sku": sku,
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
        "version": 1,
    }


async def test_an_administrator_sets_an_existing_stock_with_if_match(admin: Customer) -> None:
    sku = await stocked(admin, 10)

    response = await put_stock(admin, sku, 4, version=1)

    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    assert response.json()["on_hand"] == 4


async def test_setting_an_existing_stock_without_if_match_is_428(admin: Customer) -> None:
    sku = await stocked(admin, 10)

    response = await put_stock(admin, sku, 4)

    assert response.status_code == 428
    assert response.headers["content-type"] == "application/problem+json"
    assert (await admin.stock(sku))["on_hand"] == 10


async def test_setting_an_existing_stock_with_a_stale_if_match_is_412(admin: Customer) -> None:
    sku = await stocked(admin, 10)
    await put_stock(admin, sku, 8, version=1)

    response = await put_stock(admin, sku, 4, version=1)

    assert response.status_code == 412
    assert (await admin.stock(sku))["on_hand"] == 8


@pytest.mark.parametrize("on_hand", [-1, 1_000_000_001, "ten"])
async def test_on_hand_outside_0_to_a_billion_is_422(admin: Customer, on_hand: object) -> None:
    response = await admin.inventory.put(f"/stock/{new_sku()}", json={"on_hand": on_hand})

    assert response.status_code == 422
    assert "on_hand" in response.text


async def test_setting_stock_needs_the_admin_role(customer: Customer) -> None:
    response = await customer.inventory.put(f"/stock/{new_sku()}", json={"on_hand": 1})

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


async def test_setting_stock_needs_a_token(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.inventory_svc.url) as client:
        response = await client.put(f"/stock/{new_sku()}", json={"on_hand": 1})

    assert response.status_code == 401


async def test_any_signed_in_user_reads_a_stock_with_its_etag(
    admin: Customer, customer: Customer
) -> None:
    sku = await stocked(admin, 7)

    response = await customer.inventory.get(f"/stock/{sku}")

    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    assert response.json() == {
        "sku": sku,
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
        "version": 1,
    }


async def test_a_sku_without_stock_is_404(customer: Customer) -> None:
    response = await customer.inventory.get(f"/stock/{new_sku()}")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_sku_with_a_slash_has_a_stock_of_its_own(admin: Customer) -> None:
    sku = f"{new_sku()}/blue"

    created = await admin.inventory.put(f"/stock/{sku.replace('/', '%2F')}", json={"on_hand": 3})

    assert created.status_code == 201
    assert (await admin.stock(sku))["sku"] == sku


async def test_listing_stock_needs_the_admin_role(customer: Customer) -> None:
    assert (await customer.inventory.get("/stock")).status_code == 403


async def test_an_administrator_lists_every_stock_by_sku_a_page_at_a_time(
    admin: Customer,
) -> None:
    prefix = f"LIST-{uuid.uuid4().hex[:8]}-"
    skus = [f"{prefix}{name}" for name in ("b", "a", "C", "c")]
    for sku in skus:
        await put_stock(admin, sku, 1)
    listed: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await admin.inventory.get("/stock", params=params)).json()
        listed += [item["sku"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [sku for sku in listed if sku.startswith(prefix)] == sorted(skus)
    assert listed == sorted(listed)


async def test_a_cursor_the_api_did_not_issue_is_422(admin: Customer) -> None:
    response = await admin.inventory.get("/stock", params={"cursor": "AA"})

    assert response.status_code == 422


# The saga with two participants.


async def test_an_order_of_available_stock_is_confirmed_and_holds_it(
    admin: Customer, customer: Customer
) -> None:
    sku = await stocked(admin, 5)

    order = await customer.order_lines([(sku, 2, 100), (sku, 1, 100), ("SERVICE-1", 1, 50)])

    confirmed = await customer.order_reaches(order["id"], "confirmed")
    assert confirmed["version"] == 2
    assert (await customer.stock(sku))["reserved"] == 3
    assert (await customer.me())["credit_reserved"] == 350


async def test_an_order_out_of_stock_is_rejected_and_its_credit_released(
    admin: Customer, customer: Customer
) -> None:
    sku = await stocked(admin, 1)

    order = await customer.order_lines([(sku, 2, 100)])

    rejected = await customer.order_reaches(order["id"], "rejected")
    assert rejected["reason"] == "out_of_stock"
    await credit_settles(customer, 0)
    assert (await customer.stock(sku))["reserved"] == 0


async def test_an_order_over_the_credit_limit_is_rejected_and_its_stock_released(
    admin: Customer, customer: Customer
) -> None:
    sku = await stocked(admin, 5)

    order = await customer.order_lines([(sku, 1, CREDIT_LIMIT + 1)])

    rejected = await customer.order_reaches(order["id"], "rejected")
    assert rejected["reason"] == "insufficient_credit"
    await stock_settles(customer, sku, reserved=0, version=3)
    assert (await customer.me())["credit_reserved"] == 0


async def test_cancelling_a_confirmed_order_releases_its_stock_and_credit(
    admin: Customer, customer: Customer
) -> None:
    sku = await stocked(admin, 5)
    order = await customer.order_reaches(
        (await customer.order_lines([(sku, 2, 100)]))["id"], "confirmed"
    )

    assert (await customer.cancel(order)).status_code == 200

    await stock_settles(customer, sku, reserved=0, available=5)
    await credit_settles(customer, 0)


async def test_an_order_of_skus_without_stock_is_confirmed_as_before(customer: Customer) -> None:
    order = await customer.order_lines([(new_sku(), 3, 100)])

    confirmed = await customer.order_reaches(order["id"], "confirmed")
    assert (confirmed["version"], confirmed["reason"]) == (2, None)


async def test_on_hand_below_reserved_is_409_and_changes_nothing(
    admin: Customer, customer: Customer
) -> None:
    sku = await stocked(admin, 5)
    await customer.order_reaches((await customer.order_lines([(sku, 3, 100)]))["id"], "confirmed")
    stock = await customer.stock(sku)

    response = await put_stock(admin, sku, 2, version=stock["version"])

    assert response.status_code == 409
    assert await customer.stock(sku) == stock


async def test_orders_racing_for_the_last_units_never_oversell(
    stack: Stack, admin: Customer
) -> None:
    """100 orders of one unit each, placed at once by 10 customers, for 10 units."""
    sku = await stocked(admin, 10)
    customers = [await register(stack) for _ in range(10)]
    try:
        placed = await asyncio.gather(
            *(c.order_lines([(sku, 1, 1)]) for c in customers for _ in range(10))
        )
        owners = [c for c in customers for _ in range(10)]

        async def decided(owner: Customer, order_id: str) -> dict[str, Any]:
            async def done() -> dict[str, Any] | None:
                order = await owner.order(order_id)
                return order if order["status"] != "pending" else None

            return await eventually(done, timeout=120, what=f"order {order_id} decided")

        final = await asyncio.gather(
            *(decided(owner, order["id"]) for owner, order in zip(owners, placed, strict=True))
        )
        statuses = [order["status"] for order in final]

        assert statuses.count("confirmed") == 10
        assert statuses.count("rejected") == 90
        assert {order["reason"] for order in final if order["status"] == "rejected"} == {
            "out_of_stock"
        }
        stock = await customers[0].stock(sku)
        assert (stock["on_hand"], stock["reserved"], stock["available"]) == (10, 10, 0)
        for owner in customers:
            confirmed = sum(
                1
                for o, order in zip(owners, final, strict=True)
                if o is owner and order["status"] == "confirmed"
            )
            await credit_settles(owner, confirmed)
    finally:
        for owner in customers:
            await owner.close()
