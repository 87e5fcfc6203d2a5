"""The order aggregate: its state machine and the events it raises. Plain Python, no I/O.

    pending --credit reserved--> confirmed --cancel--> cancelled
    pending --credit rejected--> rejected
    pending --cancel----------> cancelled

Saga steps are gated by this state machine, never by the sender's version: a confirmation that
arrives for an order no longer pending is not an error, it simply has nothing left to do (a
reservation for an already-cancelled order is released by user_svc when it handles the order's
`order.cancelled`). Every change bumps `version`; the raised event carries the new version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from shared.errors import Conflict
from shared.events import (
    CreditRejectionReason,
    DomainEvent,
    EventData,
    OrderCancelled,
    OrderConfirmed,
    OrderCreated,
    OrderItem,
    OrderRejected,
)


class OrderStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


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
    reason: CreditRejectionReason | None = None
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

    def confirm(self, now: datetime) -> bool:
        """Credit was reserved: confirm if still pending. False if there was nothing to do."""
        if self.status is not OrderStatus.PENDING:
            return False
        self._change(OrderStatus.CONFIRMED, now)
        self._raise(OrderConfirmed(order_id=self.id, user_id=self.user_id, total=self.total))
        return True

    def reject(self, reason: CreditRejectionReason, now: datetime) -> bool:
        """Credit was refused: reject if still pending. False if there was nothing to do."""
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
