"""The stock of a SKU and inventory_svc's side of the order saga: all lines or none."""

from __future__ import annotations

from uuid import UUID

import pytest

from inventory_svc.domain import (
    MAX_ON_HAND,
    Line,
    Reservation,
    ReservationStatus,
    Stock,
    reserve,
)
from shared.errors import Conflict
from shared.events import (
    StockAdjusted,
    StockItem,
    StockRejected,
    StockRejectionReason,
    StockReleased,
    StockReserved,
)

ORDER_ID = UUID("00000000-0000-4000-8000-0000000000b1")


def stock(sku: str, on_hand: int, *, reserved: int = 0) -> Stock:
    return Stock(sku=sku, on_hand=on_hand, reserved=reserved, version=3)


def stocks(*of: Stock) -> dict[str, Stock]:
    return {s.sku: s for s in of}


def line(sku: str, quantity: int) -> Line:
    return Line(sku=sku, quantity=quantity)


# The stock of a SKU.


def test_a_new_stock_is_at_version_1_with_nothing_reserved_and_raises_stock_adjusted() -> None:
    created = Stock.create(sku="SKU-1", on_hand=10)

    assert (created.on_hand, created.reserved, created.available, created.version) == (10, 0, 10, 1)
    [event] = created.events
    assert event.type == "inventory.stock_adjusted"
    assert event.subject == "SKU-1"
    assert event.aggregate_version == 1
    assert event.data == StockAdjusted(sku="SKU-1", on_hand=10, reserved=0)


def test_adjusting_a_stock_sets_on_hand_bumps_its_version_and_raises_stock_adjusted() -> None:
    held = stock("SKU-1", 10, reserved=4)

    held.adjust(25)

    assert (held.on_hand, held.reserved, held.available, held.version) == (25, 4, 21, 4)
    [event] = held.events
    assert event.aggregate_version == 4
    assert event.data == StockAdjusted(sku="SKU-1", on_hand=25, reserved=4)


def test_on_hand_may_be_set_down_to_what_is_reserved() -> None:
    held = stock("SKU-1", 10, reserved=4)

    held.adjust(4)

    assert held.available == 0


def test_on_hand_below_what_is_reserved_is_a_conflict_and_changes_nothing() -> None:
    held = stock("SKU-1", 10, reserved=4)

    with pytest.raises(Conflict):
        held.adjust(3)

    assert (held.on_hand, held.version, held.events) == (10, 3, [])


@pytest.mark.parametrize("on_hand", [-1, MAX_ON_HAND + 1])
def test_on_hand_outside_0_to_a_billion_is_refused(on_hand: int) -> None:
    with pytest.raises(ValueError, match="on_hand"):
        Stock.create(sku="SKU-1", on_hand=on_hand)


# Reserving an order's lines: all or none.


def test_an_order_whose_lines_are_available_reserves_them_all() -> None:
    a, b = stock("A", 5), stock("B", 2)

    reservation = reserve(ORDER_ID, [line("A", 3), line("B", 2)], stocks(a, b))

    assert reservation.status is ReservationStatus.RESERVED
    assert reservation.items == (line("A", 3), line("B", 2))
    assert (a.reserved, a.available, a.version) == (3, 2, 4)
    assert (b.reserved, b.available, b.version) == (2, 0, 4)
    [event] = reservation.events
    assert event.type == "inventory.stock_reserved"
    assert event.subject == ORDER_ID
    assert event.correlation_id == ORDER_ID
    assert event.aggregate_version == 1
    assert event.data == StockReserved(
        order_id=ORDER_ID, items=[StockItem(sku="A", quantity=3), StockItem(sku="B", quantity=2)]
    )


def test_lines_of_the_same_sku_are_summed() -> None:
    a = stock("A", 5)

    reservation = reserve(ORDER_ID, [line("A", 2), line("A", 3)], stocks(a))

    assert reservation.items == (line("A", 5),)
    assert a.reserved == 5


def test_lines_summed_beyond_what_is_available_are_out_of_stock() -> None:
    a = stock("A", 4)

    reservation = reserve(ORDER_ID, [line("A", 2), line("A", 3)], stocks(a))

    assert reservation.status is ReservationStatus.REJECTED
    assert a.reserved == 0


def test_one_short_sku_rejects_the_order_and_reserves_nothing_of_the_others() -> None:
    a, b, c = stock("A", 5), stock("B", 1, reserved=1), stock("C", 0)

    reservation = reserve(ORDER_ID, [line("A", 1), line("B", 1), line("C", 1)], stocks(a, b, c))

    assert reservation.status is ReservationStatus.REJECTED
    assert reservation.items == ()
    assert [(s.reserved, s.version) for s in (a, b, c)] == [(0, 3), (1, 3), (0, 3)]
    [event] = reservation.events
    assert event.type == "inventory.stock_rejected"
    assert event.aggregate_version == 1
    assert event.data == StockRejected(
        order_id=ORDER_ID, reason=StockRejectionReason.OUT_OF_STOCK, skus=["B", "C"]
    )


def test_lines_of_skus_without_stock_need_none() -> None:
    a = stock("A", 1)

    reservation = reserve(ORDER_ID, [line("SERVICE-1", 100), line("A", 1)], stocks(a))

    assert reservation.status is ReservationStatus.RESERVED
    assert reservation.items == (line("A", 1),)


def test_an_order_without_stock_managed_lines_is_reserved_with_no_items() -> None:
    reservation = reserve(ORDER_ID, [line("DIGITAL-1", 3)], {})

    assert reservation.status is ReservationStatus.RESERVED
    assert reservation.items == ()
    [event] = reservation.events
    assert event.data == StockReserved(order_id=ORDER_ID, items=[])


def test_reserving_all_that_is_available_leaves_none() -> None:
    a = stock("A", 10, reserved=7)

    reserve(ORDER_ID, [line("A", 3)], stocks(a))

    assert (a.reserved, a.available) == (10, 0)


# Releasing a reservation.


def test_releasing_a_reservation_gives_its_items_back_and_raises_stock_released() -> None:
    a, b = stock("A", 5), stock("B", 2)
    reservation = reserve(ORDER_ID, [line("A", 3), line("B", 2)], stocks(a, b))
    reservation.events.clear()

    reservation.release(stocks(a, b))

    assert reservation.status is ReservationStatus.RELEASED
    assert reservation.version == 2
    assert [(s.reserved, s.version) for s in (a, b)] == [(0, 5), (0, 5)]
    [event] = reservation.events
    assert event.type == "inventory.stock_released"
    assert event.subject == ORDER_ID
    assert event.aggregate_version == 2
    assert event.data == StockReleased(
        order_id=ORDER_ID, items=[StockItem(sku="A", quantity=3), StockItem(sku="B", quantity=2)]
    )


def test_a_reservation_is_released_once() -> None:
    a = stock("A", 5)
    reservation = reserve(ORDER_ID, [line("A", 3)], stocks(a))
    reservation.release(stocks(a))

    with pytest.raises(Conflict):
        reservation.release(stocks(a))

    assert a.reserved == 0


@pytest.mark.parametrize(
    "reservation",
    [
        Reservation.tombstone(ORDER_ID),
        Reservation(order_id=ORDER_ID, status=ReservationStatus.REJECTED),
    ],
    ids=["tombstone", "rejected"],
)
def test_only_a_reserved_reservation_can_be_released(reservation: Reservation) -> None:
    with pytest.raises(Conflict):
        reservation.release({})

    assert reservation.events == []


def test_a_tombstone_holds_nothing_and_raises_nothing() -> None:
    tombstone = Reservation.tombstone(ORDER_ID)

    assert tombstone.status is ReservationStatus.CANCELLED
    assert tombstone.items == ()
    assert tombstone.events == []


def test_a_stock_cannot_hold_more_than_is_available() -> None:
    a = stock("A", 2)

    with pytest.raises(Conflict):
        a.hold(3)

    assert a.reserved == 0
