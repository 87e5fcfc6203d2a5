"""The order aggregate: placing an order and its state machine through the credit saga."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from order_svc.domain import Item, Order, OrderStatus
from shared.errors import Conflict
from shared.events import (
    CreditRejectionReason,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderItem,
    OrderRejected,
)

ORDER_ID = UUID("00000000-0000-4000-8000-0000000000b1")
USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
PLACED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = PLACED_AT + timedelta(minutes=1)
ITEMS = (
    Item(sku="APPLE", quantity=3, unit_price=150),
    Item(sku="PEAR", quantity=2, unit_price=225),
)


def placed_order() -> Order:
    order = Order.place(id=ORDER_ID, user_id=USER_ID, items=ITEMS, now=PLACED_AT)
    order.events.clear()
    return order


def test_placing_an_order_totals_quantity_times_unit_price_over_its_items() -> None:
    order = Order.place(id=ORDER_ID, user_id=USER_ID, items=ITEMS, now=PLACED_AT)

    assert order.total == 3 * 150 + 2 * 225
    assert order.status is OrderStatus.PENDING
    assert order.version == 1
    assert order.created_at == order.updated_at == PLACED_AT


def test_placing_an_order_raises_order_created_at_version_1() -> None:
    order = Order.place(id=ORDER_ID, user_id=USER_ID, items=ITEMS, now=PLACED_AT)

    [event] = order.events
    assert event.type == "order.created"
    assert event.subject == ORDER_ID
    assert event.aggregate_version == 1
    assert event.correlation_id == ORDER_ID
    assert event.data == OrderCreated(
        order_id=ORDER_ID,
        user_id=USER_ID,
        items=[
            OrderItem(sku="APPLE", quantity=3, unit_price=150),
            OrderItem(sku="PEAR", quantity=2, unit_price=225),
        ],
        total=900,
    )


def test_placing_an_order_without_items_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        Order.place(id=ORDER_ID, user_id=USER_ID, items=(), now=PLACED_AT)


def test_confirming_a_pending_order_confirms_it_at_version_2() -> None:
    order = placed_order()

    confirmed = order.confirm(LATER)

    assert confirmed is True
    assert order.status is OrderStatus.CONFIRMED
    assert order.version == 2
    assert order.updated_at == LATER


def test_confirming_a_pending_order_raises_order_confirmed() -> None:
    order = placed_order()

    order.confirm(LATER)

    [event] = order.events
    assert event.type == "order.confirmed"
    assert event.aggregate_version == 2
    assert event.correlation_id == ORDER_ID
    assert event.data == OrderConfirmed(order_id=ORDER_ID, user_id=USER_ID, total=900)


def _confirm(order: Order) -> None:
    order.confirm(PLACED_AT)


def _reject(order: Order) -> None:
    order.reject(CreditRejectionReason.INSUFFICIENT_CREDIT, PLACED_AT)


def _cancel(order: Order) -> None:
    order.cancel(PLACED_AT)


@pytest.mark.parametrize(
    "leave_pending", [_confirm, _reject, _cancel], ids=["confirmed", "rejected", "cancelled"]
)
def test_confirming_an_order_no_longer_pending_does_nothing(
    leave_pending: Callable[[Order], None],
) -> None:
    order = placed_order()
    leave_pending(order)
    order.events.clear()
    before = (order.status, order.version, order.updated_at, order.reason)

    confirmed = order.confirm(LATER)

    assert confirmed is False
    assert (order.status, order.version, order.updated_at, order.reason) == before
    assert order.events == []


def test_rejecting_a_pending_order_records_the_reason_and_raises_order_rejected() -> None:
    order = placed_order()

    rejected = order.reject(CreditRejectionReason.USER_INACTIVE, LATER)

    assert rejected is True
    assert order.status is OrderStatus.REJECTED
    assert order.reason is CreditRejectionReason.USER_INACTIVE
    assert order.version == 2
    [event] = order.events
    assert event.type == "order.rejected"
    assert event.aggregate_version == 2
    assert event.data == OrderRejected(
        order_id=ORDER_ID, user_id=USER_ID, reason=CreditRejectionReason.USER_INACTIVE
    )


def test_rejecting_an_order_no_longer_pending_does_nothing() -> None:
    order = placed_order()
    order.confirm(PLACED_AT)
    order.events.clear()

    rejected = order.reject(CreditRejectionReason.INSUFFICIENT_CREDIT, LATER)

    assert rejected is False
    assert order.status is OrderStatus.CONFIRMED
    assert order.reason is None
    assert order.version == 2
    assert order.events == []


def test_cancelling_a_pending_order_raises_order_cancelled_from_pending() -> None:
    order = placed_order()

    order.cancel(LATER)

    assert order.status is OrderStatus.CANCELLED
    assert order.version == 2
    assert order.updated_at == LATER
    [event] = order.events
    assert event.type == "order.cancelled"
    assert event.aggregate_version == 2
    assert event.data == OrderCancelled(
        order_id=ORDER_ID, user_id=USER_ID, total=900, previous_status="pending"
    )


def test_cancelling_a_confirmed_order_raises_order_cancelled_from_confirmed() -> None:
    order = placed_order()
    order.confirm(PLACED_AT)
    order.events.clear()

    order.cancel(LATER)

    assert order.status is OrderStatus.CANCELLED
    assert order.version == 3
    [event] = order.events
    assert event.aggregate_version == 3
    assert event.data == OrderCancelled(
        order_id=ORDER_ID, user_id=USER_ID, total=900, previous_status="confirmed"
    )


def test_cancelling_a_rejected_order_is_a_conflict() -> None:
    order = placed_order()
    order.reject(CreditRejectionReason.INSUFFICIENT_CREDIT, PLACED_AT)
    order.events.clear()

    with pytest.raises(Conflict):
        order.cancel(LATER)

    assert order.status is OrderStatus.REJECTED
    assert order.version == 2
    assert order.events == []


def test_cancelling_a_cancelled_order_is_a_conflict() -> None:
    order = placed_order()
    order.cancel(PLACED_AT)
    order.events.clear()

    with pytest.raises(Conflict):
        order.cancel(LATER)

    assert order.status is OrderStatus.CANCELLED
    assert order.version == 2
    assert order.events == []
