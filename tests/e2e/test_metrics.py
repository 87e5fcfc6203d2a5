"""What `/metrics` tells an operator once an order has gone through the saga."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.harness import Customer, Stack

pytestmark = pytest.mark.e2e


async def scrape(url: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_follow_an_order_through_both_services(
    stack: Stack, customer: Customer
) -> None:
    order = await customer.place_order(100)
    await customer.order_reaches(order["id"], "confirmed")

    orders = await scrape(stack.order_svc.url)
    users = await scrape(stack.user_svc.url)

    assert 'http_requests_total{method="POST",route="/orders",status="202"}' in orders
    assert (
        'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/orders"}' in orders
    )
    assert 'relay_events_published_total{type="order.created"}' in orders
    assert "relay_confirm_duration_seconds_count" in orders
    assert "outbox_unpublished_events" in orders
    assert "outbox_oldest_unpublished_age_seconds" in orders
    assert "orders_oldest_pending_age_seconds" in orders
    assert "orders_pending" in orders
    assert 'consumer_messages_total{outcome="applied",type="user.credit_reserved"}' in orders
    assert 'consumer_messages_total{outcome="applied",type="order.created"}' in users
    assert 'consumer_handler_duration_seconds_count{type="order.created"}' in users
    assert 'consumer_event_age_seconds_count{type="order.created"}' in users


async def test_route_labels_use_the_path_template_not_the_id(
    stack: Stack, customer: Customer
) -> None:
    order = await customer.place_order(100)
    await customer.order(order["id"])

    orders = await scrape(stack.order_svc.url)

    assert 'route="/orders/{order_id}"' in orders
    assert order["id"] not in orders


@pytest.mark.parametrize("service", ["user_svc", "order_svc"])
async def test_each_process_exposes_its_process_and_runtime_metrics(
    stack: Stack, service: str
) -> None:
    text = await scrape(getattr(stack, service).url)

    for name in (
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        'python_gc_collections_total{generation="0"}',
        "python_gc_objects_collected_total",
        "python_info{",
    ):
        assert f"\n{name}" in text, f"{service} does not expose {name}"
