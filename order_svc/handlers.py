"""order_svc's use cases: HTTP commands and the saga's event handlers, over a unit of work.

Commands save with the version they loaded (`WHERE version = :expected`). Saga handlers lock the
order row, let the state machine decide whether the step still applies (a reservation of either
participant, or the first rejection), and save the change;
the events the order raised go to the outbox with it. Replica handlers apply a user's state
only where it is newer than the copy's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from order_svc.domain import Customer, Item, Order, Participant
from order_svc.uow import OrderUnitOfWork
from shared.errors import Invalid, NotFound, StaleVersion
from shared.events import (
    OrderRejectionReason,
    StockRejected,
    StockReserved,
    UserCreditRejected,
    UserCreditReserved,
    UserDeactivated,
    UserRegistered,
    UserUpdated,
)
from shared.messaging.envelope import CloudEvent


@dataclass(frozen=True, kw_only=True)
class PlaceOrder:
    user_id: UUID
    items: tuple[Item, ...]
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """What "the same body" means for an idempotency key: the same items, in order."""
        canonical = json.dumps(
            [[i.sku, i.quantity, i.unit_price] for i in self.items], separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class CancelOrder:
    order_id: UUID
    user_id: UUID
    expected_version: int


@dataclass(frozen=True, kw_only=True)
class OrderView:
    order: Order
    customer: Customer | None


async def place_order(command: PlaceOrder, uow: OrderUnitOfWork) -> OrderView:
    fingerprint = command.fingerprint() if command.idempotency_key else None
    async with uow:
        if command.idempotency_key is not None:
            replay = await _replay(command, uow)
            if replay is not None:
                return replay
        order = Order.place(
            id=uuid4(), user_id=command.user_id, items=command.items, now=datetime.now(UTC)
        )
        added = await uow.orders.add(
            order, idempotency_key=command.idempotency_key, fingerprint=fingerprint
        )
        if not added:
            # A concurrent request with the same key committed first; we waited for it on the
            # unique key, and now answer with its order.
            replay = await _replay(command, uow)
            if replay is None:
                raise RuntimeError("idempotency key conflicted but no order holds it")
            return replay
        customer = await uow.customers.get(command.user_id)
        await uow.commit()
    return OrderView(order=order, customer=customer)


async def _replay(command: PlaceOrder, uow: OrderUnitOfWork) -> OrderView | None:
    assert command.idempotency_key is not None
    found = await uow.orders.by_idempotency_key(command.user_id, command.idempotency_key)
    if found is None:
        return None
    order, fingerprint = found
    if fingerprint != command.fingerprint():
        raise Invalid("this Idempotency-Key was already used with a different request body")
    return OrderView(order=order, customer=await uow.customers.get(command.user_id))


def visible_to(view: OrderView | None, order_id: UUID, user_id: UUID) -> OrderView:
    """The order if it is the caller's; another user's order does not exist for them."""
    if view is None or view.order.user_id != user_id:
        raise NotFound(f"order {order_id} not found")
    return view


async def cancel_order(command: CancelOrder, uow: OrderUnitOfWork) -> OrderView:
    async with uow:
        order = await uow.orders.get(command.order_id)
        if order is None or order.user_id != command.user_id:
            raise NotFound(f"order {command.order_id} not found")
        if order.version != command.expected_version:
            raise StaleVersion(
                f"order is at version {order.version}, not {command.expected_version}"
            )
        order.cancel(datetime.now(UTC))
        await uow.orders.save(order, expected_version=command.expected_version)
        customer = await uow.customers.get(command.user_id)
        await uow.commit()
    return OrderView(order=order, customer=customer)


async def on_credit_reserved(
    event: UserCreditReserved, _: CloudEvent, uow: OrderUnitOfWork
) -> None:
    await _reserved(event.order_id, Participant.CREDIT, uow)


async def on_stock_reserved(event: StockReserved, _: CloudEvent, uow: OrderUnitOfWork) -> None:
    await _reserved(event.order_id, Participant.STOCK, uow)


async def on_credit_rejected(
    event: UserCreditRejected, _: CloudEvent, uow: OrderUnitOfWork
) -> None:
    await _rejected(event.order_id, event.reason, uow)


async def on_stock_rejected(event: StockRejected, _: CloudEvent, uow: OrderUnitOfWork) -> None:
    await _rejected(event.order_id, event.reason, uow)


async def _reserved(order_id: UUID, participant: Participant, uow: OrderUnitOfWork) -> None:
    order = await uow.orders.get(order_id, for_update=True)
    if order is None:
        raise NotFound(f"{participant} reserved for unknown order {order_id}")
    loaded_version = order.version
    if order.reserved(participant, datetime.now(UTC)):
        await uow.orders.save(order, expected_version=loaded_version)


async def _rejected(order_id: UUID, reason: OrderRejectionReason, uow: OrderUnitOfWork) -> None:
    order = await uow.orders.get(order_id, for_update=True)
    if order is None:
        raise NotFound(f"{reason} for unknown order {order_id}")
    loaded_version = order.version
    if order.reject(reason, datetime.now(UTC)):
        await uow.orders.save(order, expected_version=loaded_version)


async def on_user_registered(
    event: UserRegistered, envelope: CloudEvent, uow: OrderUnitOfWork
) -> None:
    await uow.customers.apply_if_newer(
        event.user_id, version=envelope.aggregateversion, name=event.name, status="active"
    )


async def on_user_updated(event: UserUpdated, envelope: CloudEvent, uow: OrderUnitOfWork) -> None:
    await uow.customers.apply_if_newer(
        event.user_id, version=envelope.aggregateversion, name=event.name
    )


async def on_user_deactivated(
    event: UserDeactivated, envelope: CloudEvent, uow: OrderUnitOfWork
) -> None:
    await uow.customers.apply_if_newer(
        event.user_id, version=envelope.aggregateversion, status="deactivated"
    )
