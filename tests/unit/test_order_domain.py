"""The order aggregate: placing an order and its state machine through the saga, whose two
participants (credit and stock) both reserve before it is confirmed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from order_svc.domain import Item, Order, OrderStatus, Participant
from shared.errors import Conflict
from shared.events import (
    CreditRejectionReason,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderItem,
    OrderRejected,
    OrderRejectionReason,
    StockRejectionReason,
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


def confirm(order: Order, now: datetime) -> None:
    order.reserved(Participant.CREDIT, now)
    order.reserved(Participant.STOCK, now)


@pytest.mark.parametrize(
    ("first", "second"),
    [(Participant.CREDIT, Participant.STOCK), (Participant.STOCK, Participant.CREDIT)],
    ids=["credit-first", "stock-first"],
)
def test_an_order_both_participants_reserved_for_is_confirmed_at_version_2(
    first: Participant, second: Participant
) -> None:
    order = placed_order()

    assert order.reserved(first, PLACED_AT) is True
    assert order.reserved(second, LATER) is True

    assert order.status is OrderStatus.CONFIRMED
    assert order.reserved_by == {Participant.CREDIT, Participant.STOCK}
    assert order.version == 2
    assert order.updated_at == LATER


@pytest.mark.parametrize("participant", list(Participant))
def test_one_reservation_is_remembered_but_leaves_the_order_pending_as_it_was(
    participant: Participant,
) -> None:
    order = placed_order()

    assert order.reserved(participant, LATER) is True

    assert order.status is OrderStatus.PENDING
    assert order.reserved_by == {participant}
    assert (order.version, order.updated_at) == (1, PLACED_AT)
    assert order.events == []


def test_the_same_participant_reserving_again_does_nothing() -> None:
    order = placed_order()
    order.reserved(Participant.CREDIT, PLACED_AT)

    assert order.reserved(Participant.CREDIT, LATER) is False

    assert order.status is OrderStatus.PENDING
    assert order.reserved_by == {Participant.CREDIT}


def test_confirming_a_pending_order_raises_order_confirmed() -> None:
    order = placed_order()

    confirm(order, LATER)

    [event] = order.events
    assert event.type == "order.confirmed"
    assert event.aggregate_version == 2
    assert event.correlation_id == ORDER_ID
    assert event.data == OrderConfirmed(order_id=ORDER_ID, user_id=USER_ID, total=900)


def _confirm(order: Order) -> None:
    confirm(order, PLACED_AT)


def _reject(order: Order) -> None:
    order.reject(CreditRejectionReason.INSUFFICIENT_CREDIT, PLACED_AT)


def _cancel(order: Order) -> None:
    order.cancel(PLACED_AT)


@pytest.mark.parametrize(
    "leave_pending", [_confirm, _reject, _cancel], ids=["confirmed", "rejected", "cancelled"]
)
@pytest.mark.parametrize("participant", list(Participant))
def test_a_reservation_for_an_order_no_longer_pending_does_nothing(
    leave_pending: Callable[[Order], None], participant: Participant
) -> None:
    order = placed_order()
    leave_pending(order)
    order.events.clear()
    before = (order.status, order.version, order.updated_at, order.reason, order.reserved_by)

    assert order.reserved(participant, LATER) is False

    assert (order.status, order.version, order.updated_at, order.reason, order.reserved_by) == (
        before
    )
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


@pytest.mark.parametrize(
    "reason",
    [CreditRejectionReason.INSUFFICIENT_CREDIT, StockRejectionReason.OUT_OF_STOCK],
    ids=["credit", "stock"],
)
def test_a_rejection_after_the_other_participant_reserved_rejects_with_its_reason(
    reason: OrderRejectionReason,
) -> None:
    order = placed_order()
    order.reserved(
        Participant.STOCK if isinstance(reason, CreditRejectionReason) else Participant.CREDIT,
        PLACED_AT,
    )

    assert order.reject(reason, LATER) is True

    assert order.status is OrderStatus.REJECTED
    assert order.reason is reason
    assert order.version == 2
    [event] = order.events
    assert event.data == OrderRejected(order_id=ORDER_ID, user_id=USER_ID, reason=reason)


def test_the_first_rejection_decides_the_reason() -> None:
    order = placed_order()
    order.reject(StockRejectionReason.OUT_OF_STOCK, PLACED_AT)
    order.events.clear()

    assert order.reject(CreditRejectionReason.INSUFFICIENT_CREDIT, LATER) is False

    assert order.reason is StockRejectionReason.OUT_OF_STOCK
    assert order.events == []


def test_rejecting_an_order_no_longer_pending_does_nothing() -> None:
    order = placed_order()
    confirm(order, PLACED_AT)
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
    confirm(order, PLACED_AT)
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
