"""The event catalogue: every event type on the `events` exchange and the shape of its `data`.

This module *is* the contract's list of event types, as code. Both services import it, the
JSON Schemas and the AsyncAPI document in `catalogue/` are generated from it, and a test keeps
the committed files equal to what this module generates. Models forbid unknown fields so that
a producer drifting from the contract is caught at the consumer, not silently accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Money = Annotated[int, Field(ge=0, description="Amount in minor units (cents).")]
Text = Annotated[str, Field(pattern=r"^[^\x00]*$", description="Any text but NUL.")]
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e ]+$")]
Quantity = Annotated[int, Field(ge=1, le=10_000)]
# An order has at most this many lines, so at most this many SKUs.
MAX_ORDER_LINES = 100


class EventData(BaseModel):
    """Base of every event's `data`: strict about unknown fields, immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CreditRejectionReason(StrEnum):
    INSUFFICIENT_CREDIT = "insufficient_credit"
    USER_INACTIVE = "user_inactive"
    UNKNOWN_USER = "unknown_user"


class StockRejectionReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"


# Why an order was rejected: the reason of the participant that rejected it first.
OrderRejectionReason = CreditRejectionReason | StockRejectionReason


class OrderItem(EventData):
    sku: Sku
    quantity: Quantity
    unit_price: Annotated[int, Field(ge=0, le=1_000_000_000)]


class UserRegistered(EventData):
    user_id: UUID
    email: Text
    name: Text
    credit_limit: Money


class UserUpdated(EventData):
    user_id: UUID
    name: Text


class UserDeactivated(EventData):
    user_id: UUID


class UserCreditReserved(EventData):
    user_id: UUID
    order_id: UUID
    amount: Money


class UserCreditRejected(EventData):
    user_id: UUID
    order_id: UUID
    amount: Money
    reason: CreditRejectionReason


class UserCreditReleased(EventData):
    user_id: UUID
    order_id: UUID
    amount: Money


class OrderCreated(EventData):
    order_id: UUID
    user_id: UUID
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_ORDER_LINES)]
    total: Money


class OrderConfirmed(EventData):
    order_id: UUID
    user_id: UUID
    total: Money


class OrderRejected(EventData):
    order_id: UUID
    user_id: UUID
    reason: OrderRejectionReason


class OrderCancelled(EventData):
    order_id: UUID
    user_id: UUID
    total: Money
    previous_status: Literal["pending", "confirmed"]


class StockItem(EventData):
    """A quantity of one SKU, as inventory_svc holds it for an order (its lines summed)."""

    sku: Sku
    quantity: Annotated[int, Field(ge=1)]


StockItems = Annotated[list[StockItem], Field(max_length=MAX_ORDER_LINES)]


class StockAdjusted(EventData):
    sku: Sku
    on_hand: Annotated[int, Field(ge=0)]
    reserved: Annotated[int, Field(ge=0)]


class StockReserved(EventData):
    order_id: UUID
    items: StockItems


class StockRejected(EventData):
    order_id: UUID
    reason: StockRejectionReason
    skus: Annotated[list[Sku], Field(min_length=1, max_length=MAX_ORDER_LINES)]


class StockReleased(EventData):
    order_id: UUID
    items: StockItems


EVENT_TYPES: dict[str, type[EventData]] = {
    "user.registered": UserRegistered,
    "user.updated": UserUpdated,
    "user.deactivated": UserDeactivated,
    "user.credit_reserved": UserCreditReserved,
    "user.credit_rejected": UserCreditRejected,
    "user.credit_released": UserCreditReleased,
    "order.created": OrderCreated,
    "order.confirmed": OrderConfirmed,
    "order.rejected": OrderRejected,
    "order.cancelled": OrderCancelled,
    "inventory.stock_adjusted": StockAdjusted,
    "inventory.stock_reserved": StockReserved,
    "inventory.stock_rejected": StockRejected,
    "inventory.stock_released": StockReleased,
}

TYPE_OF: dict[type[EventData], str] = {model: name for name, model in EVENT_TYPES.items()}


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """An event raised by an aggregate, before it is wrapped in a CloudEvent envelope.

    `subject` names the aggregate: its id, or for the stock of a SKU, the sku.
    `aggregate_version` is the version of `subject` *after* the change, so that consumers
    holding a copy of the aggregate can tell a newer state from an older one.
    """

    data: EventData
    subject: UUID | str
    aggregate_version: int
    correlation_id: UUID | None = None

    @property
    def type(self) -> str:
        return TYPE_OF[type(self.data)]
