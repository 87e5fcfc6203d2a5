"""order_svc's command handlers and saga steps against a real PostgreSQL.

Idempotency keys are decided by the unique key on (user, key), races included; a batch of credit
decisions locks its orders up front. (Reads are in `test_order_queries.py`.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from order_svc.domain import Item, OrderStatus
from order_svc.handlers import (
    OrderView,
    PlaceOrder,
    on_credit_rejected,
    on_credit_reserved,
    on_stock_rejected,
    on_stock_reserved,
    place_order,
)
from order_svc.models import orders, outbox
from order_svc.uow import OrderUnitOfWork, unit_of_work
from shared.errors import Invalid
from shared.events import (
    CreditRejectionReason,
    DomainEvent,
    EventData,
    StockRejected,
    StockRejectionReason,
    StockReserved,
    UserCreditRejected,
    UserCreditReserved,
)
from shared.messaging.envelope import CloudEvent, decode, encode, wrap
from shared.persistence.database import Database
from tests.integration.rows import count_rows, outbox_types

pytestmark = pytest.mark.integration

ITEMS = (
    Item(sku="SKU-1", quantity=2, unit_price=250),
    Item(sku="SKU-2", quantity=1, unit_price=99),
)


async def place(
    database: Database,
    user_id: UUID,
    *,
    key: str | None = None,
    items: tuple[Item, ...] = ITEMS,
) -> OrderView:
    command = PlaceOrder(user_id=user_id, items=items, idempotency_key=key)
    return await place_order(command, unit_of_work(database))


async def test_a_replayed_key_with_the_same_items_returns_the_same_order(
    order_database: Database,
) -> None:
    user_id = uuid4()
    first = await place(order_database, user_id, key="key-1")

    again = await place(order_database, user_id, key="key-1")

    assert again.order.id == first.order.id
    assert again.order.items == first.order.items
    assert again.order.total == first.order.total == 599


async def test_a_replayed_key_creates_one_order_and_one_event(order_database: Database) -> None:
    user_id = uuid4()
    await place(order_database, user_id, key="key-1")

    await place(order_database, user_id, key="key-1")

    assert await count_rows(order_database, orders) == 1
    assert await outbox_types(order_database, outbox) == ["order.created"]


async def test_a_replayed_key_with_other_items_is_invalid(order_database: Database) -> None:
    user_id = uuid4()
    await place(order_database, user_id, key="key-1")

    with pytest.raises(Invalid):
        await place(
            order_database,
            user_id,
            key="key-1",
            items=(Item(sku="OTHER", quantity=1, unit_price=1),),
        )

    assert await count_rows(order_database, orders) == 1
    assert await outbox_types(order_database, outbox) == ["order.created"]


async def test_the_same_key_from_another_user_places_another_order(
    order_database: Database,
) -> None:
    first = await place(order_database, uuid4(), key="key-1")

    second = await place(order_database, uuid4(), key="key-1")

    assert second.order.id != first.order.id
    assert await outbox_types(order_database, outbox) == ["order.created", "order.created"]


async def test_orders_without_a_key_are_never_deduplicated(order_database: Database) -> None:
    user_id = uuid4()

    first = await place(order_database, user_id)
    second = await place(order_database, user_id)

    assert first.order.id != second.order.id
    assert await count_rows(order_database, orders) == 2


async def test_concurrent_requests_with_one_key_create_one_order(order_database: Database) -> None:
    user_id = uuid4()

    views = await asyncio.gather(*(place(order_database, user_id, key="key-1") for _ in range(10)))

    assert len({view.order.id for view in views}) == 1
    assert await count_rows(order_database, orders) == 1
    assert await outbox_types(order_database, outbox) == ["order.created"]


async def test_a_batch_applies_each_decision_on_what_the_one_before_left(
    order_database: Database,
) -> None:
    view = await place(order_database, uuid4())
    order = view.order
    reserved = UserCreditReserved(user_id=order.user_id, order_id=order.id, amount=order.total)
    rejected_late = UserCreditRejected(
        user_id=order.user_id,
        order_id=order.id,
        amount=order.total,
        reason=CreditRejectionReason.INSUFFICIENT_CREDIT,
    )
    stock = StockReserved(order_id=order.id, items=[])
    decisions = (stock, reserved, rejected_late)
    events = [DomainEvent(data=d, subject=order.user_id, aggregate_version=2) for d in decisions]
    first, second, third = (decode(encode(wrap(e, source="/user_svc")))[0] for e in events)

    async with unit_of_work(order_database) as uow:
        await uow.preload(decisions)
        with uow.caused_by(first):
            await on_stock_reserved(stock, first, uow)
        with uow.caused_by(second):
            await on_credit_reserved(reserved, second, uow)
        with uow.caused_by(third):
            await on_credit_rejected(rejected_late, third, uow)
        await uow.commit()

    async with unit_of_work(order_database) as uow:
        stored = await uow.orders.get(order.id)
    assert stored is not None
    assert (stored.status, stored.version) == (OrderStatus.CONFIRMED, 2)
    assert await outbox_types(order_database, outbox) == ["order.created", "order.confirmed"]


Decision = Callable[[Any, CloudEvent, OrderUnitOfWork], Awaitable[None]]


async def decide(database: Database, handler: Decision, data: EventData, source: str) -> None:
    """A participant's decision, handled as the consumer would (without the inbox)."""
    event = DomainEvent(data=data, subject=uuid4(), aggregate_version=1)
    envelope, decoded = decode(encode(wrap(event, source=source)))
    async with unit_of_work(database) as uow:
        with uow.caused_by(envelope):
            await handler(decoded, envelope, uow)
        await uow.commit()


async def stored_status(database: Database, order_id: UUID) -> tuple[OrderStatus, str | None, int]:
    async with unit_of_work(database) as uow:
        stored = await uow.orders.get(order_id)
    assert stored is not None
    return stored.status, stored.reason, stored.version


@pytest.mark.parametrize("credit_first", [True, False], ids=["credit-first", "stock-first"])
async def test_an_order_is_confirmed_once_both_participants_reserved(
    order_database: Database, credit_first: bool
) -> None:
    order = (await place(order_database, uuid4())).order
    credit = (
        on_credit_reserved,
        UserCreditReserved(user_id=order.user_id, order_id=order.id, amount=order.total),
        "/user_svc",
    )
    stock = (on_stock_reserved, StockReserved(order_id=order.id, items=[]), "/inventory_svc")
    first, second = (credit, stock) if credit_first else (stock, credit)

    await decide(order_database, *first)
    assert await stored_status(order_database, order.id) == (OrderStatus.PENDING, None, 1)
    await decide(order_database, *second)

    assert await stored_status(order_database, order.id) == (OrderStatus.CONFIRMED, None, 2)
    assert await outbox_types(order_database, outbox) == ["order.created", "order.confirmed"]


async def test_stock_rejected_after_credit_reserved_rejects_the_order_out_of_stock(
    order_database: Database,
) -> None:
    order = (await place(order_database, uuid4())).order
    await decide(
        order_database,
        on_credit_reserved,
        UserCreditReserved(user_id=order.user_id, order_id=order.id, amount=order.total),
        "/user_svc",
    )

    await decide(
        order_database,
        on_stock_rejected,
        StockRejected(order_id=order.id, reason=StockRejectionReason.OUT_OF_STOCK, skus=["SKU-1"]),
        "/inventory_svc",
    )

    assert await stored_status(order_database, order.id) == (
        OrderStatus.REJECTED,
        "out_of_stock",
        2,
    )
    assert await outbox_types(order_database, outbox) == ["order.created", "order.rejected"]


async def test_a_reservation_after_the_rejection_leaves_the_order_rejected(
    order_database: Database,
) -> None:
    order = (await place(order_database, uuid4())).order
    await decide(
        order_database,
        on_credit_rejected,
        UserCreditRejected(
            user_id=order.user_id,
            order_id=order.id,
            amount=order.total,
            reason=CreditRejectionReason.USER_INACTIVE,
        ),
        "/user_svc",
    )

    await decide(
        order_database,
        on_stock_reserved,
        StockReserved(order_id=order.id, items=[]),
        "/inventory_svc",
    )

    assert await stored_status(order_database, order.id) == (
        OrderStatus.REJECTED,
        "user_inactive",
        2,
    )
