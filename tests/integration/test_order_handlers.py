"""order_svc's command and query handlers against a real PostgreSQL.

Idempotency keys are decided by the unique key on (user, key), races included; listing pages
through a user's orders newest first with a (created_at, id) cursor; a batch of credit decisions
locks its orders up front.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from order_svc.domain import Item, Order, OrderStatus
from order_svc.handlers import (
    CancelOrder,
    OrderView,
    PlaceOrder,
    cancel_order,
    list_orders,
    on_credit_rejected,
    on_credit_reserved,
    place_order,
)
from order_svc.models import orders, outbox
from order_svc.uow import unit_of_work
from shared.db import create_engine
from shared.envelope import decode, encode, wrap
from shared.errors import Invalid
from shared.events import (
    CreditRejectionReason,
    DomainEvent,
    UserCreditRejected,
    UserCreditReserved,
)

pytestmark = pytest.mark.integration

ITEMS = (
    Item(sku="SKU-1", quantity=2, unit_price=250),
    Item(sku="SKU-2", quantity=1, unit_price=99),
)


@pytest.fixture
async def engine(order_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(order_db)
    yield engine
    await engine.dispose()


async def place(
    engine: AsyncEngine,
    user_id: UUID,
    *,
    key: str | None = None,
    items: tuple[Item, ...] = ITEMS,
) -> OrderView:
    command = PlaceOrder(user_id=user_id, items=items, idempotency_key=key)
    return await place_order(command, unit_of_work(engine))


async def order_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(orders))).scalar_one()


async def outbox_types(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list(
            (await connection.execute(select(outbox.c.type).order_by(outbox.c.seq))).scalars()
        )


async def all_pages(
    engine: AsyncEngine, user_id: UUID, *, status: OrderStatus | None, limit: int
) -> list[list[Order]]:
    """Walk the listing from the first page, following each page's cursor until the last."""
    pages: list[list[Order]] = []
    after = None
    while True:
        views, more = await list_orders(
            user_id, unit_of_work(engine), status=status, limit=limit, after=after
        )
        pages.append([view.order for view in views])
        if not more:
            return pages
        assert len(pages) < 100, "the cursor does not advance"
        last = views[-1].order
        after = (last.created_at, last.id)


async def test_a_replayed_key_with_the_same_items_returns_the_same_order(
    engine: AsyncEngine,
) -> None:
    user_id = uuid4()
    first = await place(engine, user_id, key="key-1")

    again = await place(engine, user_id, key="key-1")

    assert again.order.id == first.order.id
    assert again.order.items == first.order.items
    assert again.order.total == first.order.total == 599


async def test_a_replayed_key_creates_one_order_and_one_event(engine: AsyncEngine) -> None:
    user_id = uuid4()
    await place(engine, user_id, key="key-1")

    await place(engine, user_id, key="key-1")

    assert await order_count(engine) == 1
    assert await outbox_types(engine) == ["order.created"]


async def test_a_replayed_key_with_other_items_is_invalid(engine: AsyncEngine) -> None:
    user_id = uuid4()
    await place(engine, user_id, key="key-1")

    with pytest.raises(Invalid):
        await place(
            engine, user_id, key="key-1", items=(Item(sku="OTHER", quantity=1, unit_price=1),)
        )

    assert await order_count(engine) == 1
    assert await outbox_types(engine) == ["order.created"]


async def test_the_same_key_from_another_user_places_another_order(engine: AsyncEngine) -> None:
    first = await place(engine, uuid4(), key="key-1")

    second = await place(engine, uuid4(), key="key-1")

    assert second.order.id != first.order.id
    assert await outbox_types(engine) == ["order.created", "order.created"]


async def test_orders_without_a_key_are_never_deduplicated(engine: AsyncEngine) -> None:
    user_id = uuid4()

    first = await place(engine, user_id)
    second = await place(engine, user_id)

    assert first.order.id != second.order.id
    assert await order_count(engine) == 2


async def test_concurrent_requests_with_one_key_create_one_order(engine: AsyncEngine) -> None:
    user_id = uuid4()

    views = await asyncio.gather(*(place(engine, user_id, key="key-1") for _ in range(10)))

    assert len({view.order.id for view in views}) == 1
    assert await order_count(engine) == 1
    assert await outbox_types(engine) == ["order.created"]


async def test_orders_are_listed_newest_first_and_the_cursor_walks_each_once(
    engine: AsyncEngine,
) -> None:
    user_id = uuid4()
    placed = [(await place(engine, user_id)).order.id for _ in range(7)]
    await place(engine, uuid4())  # someone else's order is never listed

    pages = await all_pages(engine, user_id, status=None, limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [order.id for page in pages for order in page] == placed[::-1]


async def test_a_listing_that_fills_its_last_page_exactly_says_so(engine: AsyncEngine) -> None:
    user_id = uuid4()
    for _ in range(6):
        await place(engine, user_id)

    pages = await all_pages(engine, user_id, status=None, limit=3)

    assert [len(page) for page in pages] == [3, 3]


async def test_a_listing_filtered_by_status_pages_through_that_status_only(
    engine: AsyncEngine,
) -> None:
    user_id = uuid4()
    placed = [(await place(engine, user_id)).order.id for _ in range(7)]
    cancelled = placed[::2]
    for order_id in cancelled:
        await cancel_order(
            CancelOrder(order_id=order_id, user_id=user_id, expected_version=1),
            unit_of_work(engine),
        )

    cancelled_pages = await all_pages(engine, user_id, status=OrderStatus.CANCELLED, limit=3)
    pending_pages = await all_pages(engine, user_id, status=OrderStatus.PENDING, limit=3)

    assert [o.id for page in cancelled_pages for o in page] == cancelled[::-1]
    assert [o.id for page in pending_pages for o in page] == placed[1::2][::-1]
    assert {o.status for page in cancelled_pages for o in page} == {OrderStatus.CANCELLED}
    assert {o.status for page in pending_pages for o in page} == {OrderStatus.PENDING}


async def test_a_listing_of_a_user_without_orders_is_empty(engine: AsyncEngine) -> None:
    await place(engine, uuid4())

    assert await all_pages(engine, uuid4(), status=None, limit=3) == [[]]


async def test_a_batch_applies_each_decision_on_what_the_one_before_left(
    engine: AsyncEngine,
) -> None:
    view = await place(engine, uuid4())
    order = view.order
    reserved = UserCreditReserved(user_id=order.user_id, order_id=order.id, amount=order.total)
    rejected_late = UserCreditRejected(
        user_id=order.user_id,
        order_id=order.id,
        amount=order.total,
        reason=CreditRejectionReason.INSUFFICIENT_CREDIT,
    )
    decisions = (reserved, rejected_late)
    events = [DomainEvent(data=d, subject=order.user_id, aggregate_version=2) for d in decisions]
    first, second = (decode(encode(wrap(e, source="/user_svc")))[0] for e in events)

    async with unit_of_work(engine) as uow:
        await uow.preload(decisions)
        uow.cause = first
        await on_credit_reserved(reserved, first, uow)
        uow.cause = second
        await on_credit_rejected(rejected_late, second, uow)
        await uow.commit()

    async with unit_of_work(engine) as uow:
        stored = await uow.orders.get(order.id)
    assert stored is not None
    assert (stored.status, stored.version) == (OrderStatus.CONFIRMED, 2)
    assert await outbox_types(engine) == ["order.created", "order.confirmed"]
