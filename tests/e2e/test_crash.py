"""Sudden death (SIGKILL) of a service at the worst moments loses nothing and duplicates nothing."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.harness import Stack, register
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


async def test_a_service_killed_between_commit_and_publish_loses_no_event(
    own_stack: Stack,
) -> None:
    """The order is committed with its event, the process dies before any relay ran: after a
    restart the relay publishes it and the saga completes, with the credit reserved once."""
    own_stack.user_svc.start()
    own_stack.inventory_svc.start()
    # API only: nothing publishes the outbox before the kill.
    own_stack.order_svc.start("api", MIGRATE_ON_START="true")
    await asyncio.gather(*(service.wait_ready() for service in own_stack.services))
    customer = await register(own_stack)
    order = await customer.place_order(4_200)

    own_stack.order_svc.kill()
    own_stack.order_svc.start()
    await own_stack.order_svc.wait_ready()

    confirmed = await customer.order_reaches(order["id"], "confirmed")
    assert confirmed["version"] == 2
    assert (await customer.me())["credit_reserved"] == 4_200
    await customer.close()


async def test_services_killed_mid_flow_lose_nothing_and_apply_nothing_twice(
    own_stack: Stack,
) -> None:
    """Kill each service while orders stream through it (between commit and ack, between
    publish and mark-published: wherever it lands), restart it, and check the books."""
    await own_stack.start()
    customer = await register(own_stack)
    orders = [await customer.place_order(1_000) for _ in range(10)]
    await customer.order_reaches(orders[0]["id"], "confirmed")

    orders += [await customer.place_order(1_000) for _ in range(10)]
    own_stack.user_svc.kill()
    # Accepted while user_svc is dead: their events wait in its queue.
    orders += [await customer.place_order(1_000) for _ in range(5)]
    own_stack.user_svc.start()
    await own_stack.user_svc.wait_ready()
    orders += [await customer.place_order(1_000) for _ in range(10)]
    own_stack.order_svc.kill()
    own_stack.order_svc.start()
    await own_stack.order_svc.wait_ready()
    orders += [await customer.place_order(1_000) for _ in range(5)]
    own_stack.inventory_svc.kill()
    # Accepted while inventory_svc is dead: they wait for its answer, then are confirmed.
    orders += [await customer.place_order(1_000) for _ in range(5)]
    own_stack.inventory_svc.start()
    await own_stack.inventory_svc.wait_ready()

    for order in orders:
        final = await customer.order_reaches(order["id"], "confirmed")
        assert final["version"] == 2, f"order {order['id']} was changed more than once"

    async def books_balance() -> bool:
        return (await customer.me())["credit_reserved"] == 1_000 * len(orders)

    await eventually(books_balance, what="credit_reserved equal to the confirmed totals")
    await customer.close()
