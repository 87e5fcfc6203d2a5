"""The one-statement read behind `GET /orders/{id}` returns what the unit of work wrote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from order_svc import handlers
from order_svc.domain import Customer, Item
from order_svc.queries import OrderQueries
from order_svc.uow import unit_of_work
from shared.db import create_engine

pytestmark = pytest.mark.integration

ITEMS = (
    Item(sku="B-2", quantity=1, unit_price=500),
    Item(sku="A-1", quantity=3, unit_price=250),
    Item(sku="C-3", quantity=2, unit_price=0),
)


@pytest.fixture
async def engine(order_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(order_db, pool_size=2)
    yield engine
    await engine.dispose()


async def test_an_order_reads_back_with_its_items_in_order(engine: AsyncEngine) -> None:
    placed = await handlers.place_order(
        handlers.PlaceOrder(user_id=uuid4(), items=ITEMS), unit_of_work(engine)
    )

    view = await OrderQueries(engine).order(placed.order.id)

    assert view is not None
    assert view.order == placed.order
    assert view.order.items == ITEMS


async def test_an_order_of_a_user_not_yet_replicated_has_no_customer(engine: AsyncEngine) -> None:
    placed = await handlers.place_order(
        handlers.PlaceOrder(user_id=uuid4(), items=ITEMS[:1]), unit_of_work(engine)
    )

    view = await OrderQueries(engine).order(placed.order.id)

    assert view is not None
    assert view.customer is None


async def test_an_order_reads_back_with_its_customers_replica(engine: AsyncEngine) -> None:
    user_id = uuid4()
    async with unit_of_work(engine) as uow:
        await uow.customers.apply_if_newer(user_id, version=1, name="Ada", status="active")
        await uow.commit()
    placed = await handlers.place_order(
        handlers.PlaceOrder(user_id=user_id, items=ITEMS[:1]), unit_of_work(engine)
    )

    view = await OrderQueries(engine).order(placed.order.id)

    assert view is not None
    assert view.customer == Customer(id=user_id, name="Ada", status="active", version=1)


async def test_an_unknown_order_reads_as_none(engine: AsyncEngine) -> None:
    assert await OrderQueries(engine).order(uuid4()) is None
