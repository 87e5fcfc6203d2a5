"""order_svc's reads against a real PostgreSQL: `GET /orders/{id}` returns what the unit of work
wrote, in one statement; the listing pages through a user's orders newest first with a
(created_at, id) cursor, optionally of one status."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from order_svc import handlers
from order_svc.domain import Customer, Item, Order, OrderStatus
from order_svc.queries import OrderQueries
from order_svc.uow import unit_of_work
from shared.persistence.database import Database

pytestmark = pytest.mark.integration

ITEMS = (
    Item(sku="B-2", quantity=1, unit_price=500),
    Item(sku="A-1", quantity=3, unit_price=250),
    Item(sku="C-3", quantity=2, unit_price=0),
)


async def place(database: Database, user_id: UUID, items: tuple[Item, ...] = ITEMS) -> Order:
    placed = await handlers.place_order(
        handlers.PlaceOrder(user_id=user_id, items=items), unit_of_work(database)
    )
    return placed.order


async def all_pages(
    database: Database, user_id: UUID, *, status: OrderStatus | None, limit: int
) -> list[list[Order]]:
    """Walk the listing from the first page, following each page's cursor until the last."""
    queries = OrderQueries(database)
    pages: list[list[Order]] = []
    after = None
    while True:
        views, more = await queries.page(user_id, status=status, limit=limit, after=after)
        pages.append([view.order for view in views])
        if not more:
            return pages
        assert len(pages) < 100, "the cursor does not advance"
        last = views[-1].order
        after = (last.created_at, last.id)


async def test_an_order_reads_back_with_its_items_in_order(order_database: Database) -> None:
    placed = await place(order_database, uuid4())

    view = await OrderQueries(order_database).order(placed.id)

    assert view is not None
    assert view.order == placed
    assert view.order.items == ITEMS


async def test_an_order_of_a_user_not_yet_replicated_has_no_customer(
    order_database: Database,
) -> None:
    placed = await place(order_database, uuid4(), ITEMS[:1])

    view = await OrderQueries(order_database).order(placed.id)

    assert view is not None
    assert view.customer is None


async def test_an_order_reads_back_with_its_customers_replica(order_database: Database) -> None:
    user_id = uuid4()
    async with unit_of_work(order_database) as uow:
        await uow.customers.apply_if_newer(user_id, version=1, name="Ada", status="active")
        await uow.commit()
    placed = await place(order_database, user_id, ITEMS[:1])

    view = await OrderQueries(order_database).order(placed.id)

    assert view is not None
    assert view.customer == Customer(id=user_id, name="Ada", status="active", version=1)


async def test_an_unknown_order_reads_as_none(order_database: Database) -> None:
    assert await OrderQueries(order_database).order(uuid4()) is None


async def test_orders_are_listed_newest_first_and_the_cursor_walks_each_once(
    order_database: Database,
) -> None:
    user_id = uuid4()
    placed = [(await place(order_database, user_id)).id for _ in range(7)]
    await place(order_database, uuid4())  # someone else's order is never listed

    pages = await all_pages(order_database, user_id, status=None, limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [order.id for page in pages for order in page] == placed[::-1]


async def test_a_listing_that_fills_its_last_page_exactly_says_so(
    order_database: Database,
) -> None:
    user_id = uuid4()
    for _ in range(6):
        await place(order_database, user_id)

    pages = await all_pages(order_database, user_id, status=None, limit=3)

    assert [len(page) for page in pages] == [3, 3]


async def test_a_listing_filtered_by_status_pages_through_that_status_only(
    order_database: Database,
) -> None:
    user_id = uuid4()
    placed = [(await place(order_database, user_id)).id for _ in range(7)]
    cancelled = placed[::2]
    for order_id in cancelled:
        await handlers.cancel_order(
            handlers.CancelOrder(order_id=order_id, user_id=user_id, expected_version=1),
            unit_of_work(order_database),
        )

    cancelled_pages = await all_pages(
        order_database, user_id, status=OrderStatus.CANCELLED, limit=3
    )
    pending_pages = await all_pages(order_database, user_id, status=OrderStatus.PENDING, limit=3)

    assert [o.id for page in cancelled_pages for o in page] == cancelled[::-1]
    assert [o.id for page in pending_pages for o in page] == placed[1::2][::-1]
    assert {o.status for page in cancelled_pages for o in page} == {OrderStatus.CANCELLED}
    assert {o.status for page in pending_pages for o in page} == {OrderStatus.PENDING}


async def test_a_listing_of_a_user_without_orders_is_empty(order_database: Database) -> None:
    await place(order_database, uuid4())

    assert await all_pages(order_database, uuid4(), status=None, limit=3) == [[]]
