"""What a project that works with eventful can check in its CI, with the plugin's fixtures only.

`pip install 'eventful[testing]'` brings the plugin; nothing here is imported from eventful.
Each test signs up a user of its own, so the tests share one stack and stay independent.
"""

BOOKS = {"items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": 1500}]}


async def test_an_order_within_the_credit_limit_is_confirmed(eventful_user, eventful_tap):
    orders = eventful_user.client("order_svc")

    placed = await orders.post("/orders", json=BOOKS)

    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    confirmed = await eventful_tap.wait_for(
        "order.confirmed", where=lambda event: event["data"]["order_id"] == order_id
    )
    assert confirmed["data"]["total"] == 3000


async def test_an_order_over_the_credit_limit_is_rejected(eventful_user, eventful_tap):
    orders = eventful_user.client("order_svc")
    limit = (await eventful_user.client("user_svc").get("/users/me")).json()["credit_limit"]

    placed = await orders.post(
        "/orders", json={"items": [{"sku": "CAR-1", "quantity": 1, "unit_price": limit + 1}]}
    )

    order_id = placed.json()["id"]
    rejected = await eventful_tap.wait_for(
        "order.rejected", where=lambda event: event["data"]["order_id"] == order_id
    )
    assert rejected["data"]["reason"] == "insufficient_credit"


async def test_a_placed_order_reads_confirmed_a_moment_later(eventful_user, eventful_eventually):
    orders = eventful_user.client("order_svc")
    order_id = (await orders.post("/orders", json=BOOKS)).json()["id"]

    async def confirmed():
        order = await orders.get(f"/orders/{order_id}")
        return order if order.json()["status"] == "confirmed" else None

    order = await eventful_eventually(confirmed, what=f"order {order_id} confirmed")
    assert order.headers["ETag"] == '"2"'


async def test_an_event_published_by_another_program_is_applied(
    eventful_user, eventful_publish, eventful_eventually
):
    orders = eventful_user.client("order_svc")
    order_id = (await orders.post("/orders", json=BOOKS)).json()["id"]

    await eventful_publish(
        "user.updated",
        {"user_id": str(eventful_user.id), "name": "Renamed elsewhere"},
        aggregate_version=2,
        source="/example-ci",
    )

    async def customer_renamed():
        customer = (await orders.get(f"/orders/{order_id}")).json()["customer"]
        return customer and customer["name"] == "Renamed elsewhere"

    assert await eventful_eventually(customer_renamed, what="order_svc's copy of the user renamed")
