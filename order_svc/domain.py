"""The order aggregate: its state machine and the events it raises. Plain Python, no I/O.

    pending --credit and stock reserved--> confirmed --cancel--> cancelled
    pending --credit or stock rejected---> rejected
    pending --cancel---------------------> cancelled

Two participants reserve for an order, in parallel: user_svc its credit, inventory_svc its stock.
The order remembers which of them have reserved and is confirmed when both have, whichever came
first; the first rejection rejects it, with that participant's reason. Which replies are held
is a set, so the outcome does not depend on the order they arrive in.

Saga steps are gated by this state machine, never by the sender's version: a reservation that
arrives for an order no longer pending is not an error, it simply has nothing left to do (the
participant releases it itself when it handles the order's `order.rejected` or
`order.cancelled`). Every change of the order's state bumps `version`, and the raised event
carries the new version; remembering the first of the two reservations changes nothing a client
sees, so it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from shared.errors import Conflict
from shared.events import (
    DomainEvent,
    EventData,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderItem,
    OrderRejected,
    OrderRejectionReason,
)


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class Participant(StrEnum):
    """Who must reserve something for an order before it is confirmed."""

    CREDIT = "credit"  # user_svc: the order's total, from the user's credit
    STOCK = "stock"  # inventory_svc: the quantities of its stock-managed lines


PARTICIPANTS = frozenset(Participant)


@dataclass(frozen=True, kw_only=True)
class Item:
    sku: str
    quantity: int
    unit_price: int


@dataclass(frozen=True, kw_only=True)
class Customer:
    """order_svc's read-only copy of a user, built from `user.*` events."""

    id: UUID
    name: str | None
    status: str | None
    version: int


@dataclass(kw_only=True)
class Order:
    id: UUID
    user_id: UUID
    status: OrderStatus = OrderStatus.PENDING
    reason: OrderRejectionReason | None = None
    reserved_by: frozenset[Participant] = frozenset()
    items: tuple[Item, ...]
    total: int
    version: int = 1
    created_at: datetime
    updated_at: datetime
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def place(cls, *, id: UUID, user_id: UUID, items: tuple[Item, ...], now: datetime) -> Order:
        if not items:
            raise ValueError("an order needs at least one item")
        total = sum(item.quantity * item.unit_price for item in items)
        order = cls(
            id=id, user_id=user_id, items=items, total=total, created_at=now, updated_at=now
        )
        order._raise(
            OrderCreated(
                order_id=id,
                user_id=user_id,
                items=[
                    OrderItem(sku=i.sku, quantity=i.quantity, unit_price=i.unit_price)
                    for i in items
                ],
                total=total,
            )
        )
        return order

    def reserved(self, participant: Participant, now: datetime) -> bool:
        """`participant` reserved what the order needs of it: remember it while the order is
        pending, and confirm the order once every participant has. False if there was nothing
        to do."""
        if self.status is not OrderStatus.PENDING or participant in self.reserved_by:
            return False
        self.reserved_by |= {participant}
        if self.reserved_by == PARTICIPANTS:
            self._change(OrderStatus.CONFIRMED, now)
            self._raise(OrderConfirmed(order_id=self.id, user_id=self.user_id, total=self.total))
        return True

    def reject(self, reason: OrderRejectionReason, now: datetime) -> bool:
        """A participant refused (the first to): reject if still pending, with its reason.
        False if there was nothing to do."""
        if self.status is not OrderStatus.PENDING:
            return False
        self._change(OrderStatus.REJECTED, now)
        self.reason = reason
        self._raise(OrderRejected(order_id=self.id, user_id=self.user_id, reason=reason))
        return True

    def cancel(self, now: datetime) -> None:
        previous = self.status
        if previous not in (OrderStatus.PENDING, OrderStatus.CONFIRMED):
            raise Conflict(f"a {previous} order cannot be cancelled")
        self._change(OrderStatus.CANCELLED, now)
        self._raise(
            OrderCancelled(
                order_id=self.id,
                user_id=self.user_id,
                total=self.total,
                previous_status="pending" if previous is OrderStatus.PENDING else "confirmed",
            )
        )

    def _change(self, status: OrderStatus, now: datetime) -> None:
        self.status = status
        self.version += 1
        self.updated_at = now

    def _raise(self, data: EventData) -> None:
        self.events.append(
            DomainEvent(
                data=data, subject=self.id, aggregate_version=self.version, correlation_id=self.id
            )
        )
