"""Reads that answer HTTP queries: one statement each, outside any transaction.

A single statement already sees one consistent snapshot, so a read needs no BEGIN and no
ROLLBACK; with the order, its items (aggregated into arrays) and the customer's replica joined
in one statement, `GET /orders/{id}` costs one round trip to PostgreSQL instead of five.
Writes never come here: they go through the unit of work.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import ColumnElement, ScalarSelect, bindparam, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncEngine

from order_svc.domain import Customer, Item
from order_svc.handlers import OrderView
from order_svc.models import customers, order_items, orders
from order_svc.uow import order_from
from shared.db import HotQuery


def _items(column: ColumnElement[Any]) -> ScalarSelect[Any]:
    """One column of the order's items as an array, in their order."""
    return (
        select(func.array_agg(aggregate_order_by(column, order_items.c.position)))
        .where(order_items.c.order_id == orders.c.id)
        .scalar_subquery()
    )


_ORDER_VIEW = HotQuery(
    select(
        orders.c.id,
        orders.c.user_id,
        orders.c.status,
        orders.c.reason,
        orders.c.total,
        orders.c.version,
        orders.c.created_at,
        orders.c.updated_at,
        _items(order_items.c.sku).label("skus"),
        _items(order_items.c.quantity).label("quantities"),
        _items(order_items.c.unit_price).label("unit_prices"),
        customers.c.name.label("customer_name"),
        customers.c.status.label("customer_status"),
        customers.c.version.label("customer_version"),
    )
    .outerjoin(customers, customers.c.id == orders.c.user_id)
    .where(orders.c.id == bindparam("order_id"))
)


class OrderQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def order(self, order_id: UUID) -> OrderView | None:
        async with self._engine.connect() as connection:
            row = await _ORDER_VIEW.fetchrow(connection, order_id=order_id)
        return None if row is None else _view(row)


def _view(row: asyncpg.Record) -> OrderView:
    items = (
        Item(sku=s, quantity=q, unit_price=p)
        for s, q, p in zip(
            row["skus"] or (), row["quantities"] or (), row["unit_prices"] or (), strict=True
        )
    )
    order = order_from(row, items)
    customer = (
        None
        if row["customer_version"] is None
        else Customer(
            id=row["user_id"],
            name=row["customer_name"],
            status=row["customer_status"],
            version=row["customer_version"],
        )
    )
    return OrderView(order=order, customer=customer)
