"""The stock of each SKU and its side of the order saga. Plain Python: no I/O, no frameworks.

Invariants kept here (and again by check constraints in the database):
- `0 <= reserved <= on_hand <= MAX_ON_HAND` for every SKU: an adjustment never takes `on_hand`
  below what is reserved, and a reservation never takes more than is `available`;
- an order's stock is decided once, for all its stock-managed lines at once: every line
  reserved, or none (rejected, naming the SKUs that fell short);
- a reservation is released at most once, and only if it was made;
- an order rejected or cancelled before its stock was decided is never reserved afterwards (the
  tombstone `cancelled` state), so a late `order.created` cannot leave stock held.
Every change of a stock or a reservation bumps its `version` by one; the raised event carries
the new version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from shared.errors import Conflict
from shared.events import (
    DomainEvent,
    EventData,
    StockAdjusted,
    StockItem,
    StockRejected,
    StockRejectionReason,
    StockReleased,
    StockReserved,
)

MAX_ON_HAND = 1_000_000_000


@dataclass(frozen=True, kw_only=True)
class Line:
    """A quantity of one SKU: an order's line, or what a reservation holds of a SKU."""

    sku: str
    quantity: int


@dataclass(kw_only=True)
class Stock:
    """The stock of one SKU. A SKU is stock-managed once it has one."""

    sku: str
    on_hand: int
    reserved: int = 0
    version: int = 1
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def create(cls, *, sku: str, on_hand: int) -> Stock:
        _check_on_hand(on_hand)
        stock = cls(sku=sku, on_hand=on_hand)
        stock._adjusted()
        return stock

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def adjust(self, on_hand: int) -> None:
        """Set what is on hand; never below what is reserved."""
        _check_on_hand(on_hand)
        if on_hand < self.reserved:
            raise Conflict(
                f"{self.reserved} of {self.sku!r} are reserved: on_hand cannot be {on_hand}"
            )
        self.on_hand = on_hand
        self.version += 1
        self._adjusted()

    def hold(self, quantity: int) -> None:
        if quantity > self.available:
            raise Conflict(f"only {self.available} of {self.sku!r} are available, not {quantity}")
        self.reserved += quantity
        self.version += 1

    def give_back(self, quantity: int) -> None:
        if quantity > self.reserved:
            raise Conflict(f"only {self.reserved} of {self.sku!r} are reserved, not {quantity}")
        self.reserved -= quantity
        self.version += 1

    def _adjusted(self) -> None:
        self.events.append(
            DomainEvent(
                data=StockAdjusted(sku=self.sku, on_hand=self.on_hand, reserved=self.reserved),
                subject=self.sku,
                aggregate_version=self.version,
            )
        )


def _check_on_hand(on_hand: int) -> None:
    if not 0 <= on_hand <= MAX_ON_HAND:
        raise ValueError(f"on_hand must be between 0 and {MAX_ON_HAND}, not {on_hand}")


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    REJECTED = "rejected"
    RELEASED = "released"
    CANCELLED = "cancelled"
    """The order was rejected or cancelled before its stock was decided: never reserve it."""


@dataclass(kw_only=True)
class Reservation:
    """An order's stock decision at this service, one per order (its key is the order).

    `items` are what it holds (reserved) or held (released), one per SKU; none otherwise.
    """

    order_id: UUID
    status: ReservationStatus
    items: tuple[Line, ...] = ()
    version: int = 1
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def reserved(cls, order_id: UUID, items: tuple[Line, ...]) -> Reservation:
        reservation = cls(order_id=order_id, status=ReservationStatus.RESERVED, items=items)
        reservation._raise(StockReserved(order_id=order_id, items=_stock_items(items)))
        return reservation

    @classmethod
    def rejected(cls, order_id: UUID, short: list[str]) -> Reservation:
        reservation = cls(order_id=order_id, status=ReservationStatus.REJECTED)
        reservation._raise(
            StockRejected(order_id=order_id, reason=StockRejectionReason.OUT_OF_STOCK, skus=short)
        )
        return reservation

    @classmethod
    def tombstone(cls, order_id: UUID) -> Reservation:
        """Remember that an order ended before its stock was decided."""
        return cls(order_id=order_id, status=ReservationStatus.CANCELLED)

    def release(self, stocks: Mapping[str, Stock]) -> None:
        """Give back everything this reservation holds, to the stocks it was taken from."""
        if self.status is not ReservationStatus.RESERVED:
            raise Conflict(f"the stock of order {self.order_id} is {self.status}, not reserved")
        for item in self.items:
            stocks[item.sku].give_back(item.quantity)
        self.status = ReservationStatus.RELEASED
        self.version += 1
        self._raise(StockReleased(order_id=self.order_id, items=_stock_items(self.items)))

    def _raise(self, data: EventData) -> None:
        self.events.append(
            DomainEvent(
                data=data,
                subject=self.order_id,
                aggregate_version=self.version,
                correlation_id=self.order_id,
            )
        )


def needed(lines: Iterable[Line], stocks: Mapping[str, Stock]) -> dict[str, int]:
    """The quantities an order needs of each stock-managed SKU: its lines summed per SKU, in
    the order the SKUs first appear; lines of other SKUs need no stock."""
    totals: dict[str, int] = {}
    for line in lines:
        if line.sku in stocks:
            totals[line.sku] = totals.get(line.sku, 0) + line.quantity
    return totals


def reserve(order_id: UUID, lines: Iterable[Line], stocks: Mapping[str, Stock]) -> Reservation:
    """Decide an order's stock: hold every stock-managed line if each SKU has enough available,
    else hold nothing and name the SKUs that fell short.

    `stocks` holds every stock-managed SKU of the order; a SKU missing from it is not managed.
    """
    totals = needed(lines, stocks)
    short = [sku for sku, quantity in totals.items() if stocks[sku].available < quantity]
    if short:
        return Reservation.rejected(order_id, short)
    items = tuple(Line(sku=sku, quantity=quantity) for sku, quantity in totals.items())
    for item in items:
        stocks[item.sku].hold(item.quantity)
    return Reservation.reserved(order_id, items)


def _stock_items(items: Iterable[Line]) -> list[StockItem]:
    return [StockItem(sku=item.sku, quantity=item.quantity) for item in items]
