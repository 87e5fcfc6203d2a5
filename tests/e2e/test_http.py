"""The HTTP contract across services: idempotency keys, optimistic concurrency, ownership."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.harness import Customer, Stack, register

pytestmark = pytest.mark.e2e

ITEMS = {"items": [{"sku": "IDEM-1", "quantity": 2, "unit_price": 100}]}


async def test_repeating_an_idempotency_key_returns_the_same_order(customer: Customer) -> None:
    key = str(uuid.uuid4())

    first = await customer.orders.post("/orders", json=ITEMS, headers={"Idempotency-Key": key})
    again = await customer.orders.post("/orders", json=ITEMS, headers={"Idempotency-Key": key})

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    listed = (await customer.orders.get("/orders")).json()["items"]
    assert [o["id"] for o in listed] == [first.json()["id"]]


async def test_an_idempotency_key_reused_with_another_body_is_refused(customer: Customer) -> None:
    key = str(uuid.uuid4())
    await customer.orders.post("/orders", json=ITEMS, headers={"Idempotency-Key": key})

    other = {"items": [{"sku": "IDEM-2", "quantity": 1, "unit_price": 100}]}
    response = await customer.orders.post("/orders", json=other, headers={"Idempotency-Key": key})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_stale_if_match_gets_412_and_changes_nothing(customer: Customer) -> None:
    order = await customer.order_reaches((await customer.place_order(100))["id"], "confirmed")

    response = await customer.cancel({**order, "version": order["version"] - 1})

    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    assert await customer.order(order["id"]) == order
    assert (await customer.me())["credit_reserved"] == 100


async def test_a_mutation_without_if_match_gets_428(customer: Customer) -> None:
    order = await customer.place_order(100)

    response = await customer.orders.post(f"/orders/{order['id']}/cancel")

    assert response.status_code == 428
    renamed = await customer.users.patch(f"/users/{customer.id}", json={"name": "New"})
    assert renamed.status_code == 428


async def test_renaming_with_the_current_version_bumps_it_and_sets_the_etag(
    customer: Customer,
) -> None:
    me = await customer.me()

    response = await customer.users.patch(
        f"/users/{customer.id}",
        json={"name": "Renamed"},
        headers={"If-Match": f'"{me["version"]}"'},
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert response.json()["version"] == me["version"] + 1
    assert response.headers["ETag"] == f'"{me["version"] + 1}"'


async def test_a_user_cannot_read_another_users_order(stack: Stack, customer: Customer) -> None:
    order = await customer.place_order(100)
    intruder = await register(stack)

    response = await intruder.orders.get(f"/orders/{order['id']}")
    cancel = await intruder.cancel(order)
    listed = (await intruder.orders.get("/orders")).json()

    assert response.status_code == 404
    assert cancel.status_code == 404
    assert listed["items"] == []
    await intruder.close()


async def test_a_user_cannot_read_or_change_another_user(stack: Stack, customer: Customer) -> None:
    other = await register(stack)

    read = await customer.users.get(f"/users/{other.id}")
    renamed = await customer.users.patch(
        f"/users/{other.id}", json={"name": "Mallory"}, headers={"If-Match": '"1"'}
    )

    assert read.status_code == 403
    assert renamed.status_code == 403
    assert (await other.me())["name"] == "Test User"
    await other.close()


async def test_requests_without_a_valid_token_are_unauthorized(stack: Stack) -> None:
    customer = await register(stack)
    customer.orders.headers["Authorization"] = "Bearer not-a-token"

    response = await customer.orders.get("/orders")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    await customer.close()


async def test_registering_a_taken_email_is_a_conflict(stack: Stack, customer: Customer) -> None:
    response = await customer.users.post(
        "/users", json={"email": customer.email, "name": "Twin", "password": "another pass"}
    )

    assert response.status_code == 409


async def test_invalid_order_input_names_the_field(customer: Customer) -> None:
    response = await customer.orders.post(
        "/orders", json={"items": [{"sku": "A", "quantity": 0, "unit_price": 1}]}
    )

    assert response.status_code == 422
    assert "items.0.quantity" in response.json()["detail"]


async def test_orders_are_listed_newest_first_across_pages(customer: Customer) -> None:
    placed = [(await customer.place_order(10 + i))["id"] for i in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await customer.orders.get("/orders", params=params)).json()
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(placed))
