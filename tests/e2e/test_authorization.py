"""Every endpoint that touches a resource refuses another user's (OWASP API1 and API5), and
request bodies refuse fields they do not define (API3: no mass assignment)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.harness import Customer, Stack, register

pytestmark = pytest.mark.e2e


@pytest.fixture
async def victim(stack: Stack) -> AsyncIterator[Customer]:
    customer = await register(stack)
    yield customer
    await customer.close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/users/{user}", None),
        ("PATCH", "/users/{user}", {"name": "Mallory"}),
        ("POST", "/users/{user}/deactivate", None),
    ],
)
async def test_a_user_cannot_touch_another_user(
    customer: Customer,
    victim: Customer,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    response = await customer.users.request(
        method, path.format(user=victim.id), json=body, headers={"If-Match": '"1"'}
    )

    assert response.status_code == 403
    untouched = await victim.me()
    assert (untouched["name"], untouched["status"], untouched["version"]) == (
        "Test User",
        "active",
        1,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/orders/{order}"), ("POST", "/orders/{order}/cancel")],
)
async def test_a_user_cannot_touch_another_users_order(
    customer: Customer, victim: Customer, method: str, path: str
) -> None:
    order = await victim.place_order(100)

    response = await customer.orders.request(
        method, path.format(order=order["id"]), headers={"If-Match": f'"{order["version"]}"'}
    )

    assert response.status_code == 404
    assert (await victim.order(order["id"]))["status"] != "cancelled"


async def test_listing_orders_shows_only_the_callers_own(
    customer: Customer, victim: Customer
) -> None:
    await victim.place_order(100)
    mine = await customer.place_order(100)

    listed = (await customer.orders.get("/orders")).json()["items"]

    assert [o["id"] for o in listed] == [mine["id"]]


async def test_an_order_cannot_be_placed_for_someone_else(
    customer: Customer, victim: Customer
) -> None:
    response = await customer.orders.post(
        "/orders",
        json={
            "user_id": str(victim.id),
            "items": [{"sku": "A", "quantity": 1, "unit_price": 1}],
        },
    )

    assert response.status_code == 422
    assert "user_id" in response.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"), [("credit_limit", 10**9), ("status", "active"), ("version", 1)]
)
async def test_a_user_cannot_set_fields_the_api_does_not_offer(
    customer: Customer, field: str, value: object
) -> None:
    me = await customer.me()

    response = await customer.users.patch(
        f"/users/{customer.id}",
        json={"name": "Still Me", field: value},
        headers={"If-Match": f'"{me["version"]}"'},
    )

    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert await customer.me() == me


async def test_registration_refuses_fields_it_does_not_define(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.user_svc.url) as client:
        response = await client.post(
            "/users",
            json={
                "email": "mass@example.com",
                "name": "Mass",
                "password": "correct horse",
                "credit_limit": 10**9,
            },
        )

    assert response.status_code == 422
    assert "credit_limit" in response.json()["detail"]
