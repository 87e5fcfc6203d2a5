"""Reads that answer HTTP queries: one statement each, outside any transaction.

A single statement already sees one consistent snapshot, so a read needs no BEGIN and no
ROLLBACK; with the order, its items (aggregated into arrays) and the customer's replica joined
in one statement, `GET /orders/{id}` costs one round trip to PostgreSQL instead of five.
Writes never come here: they go through the unit of work.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from order_svc.domain import Customer
from order_svc.handlers import OrderView
from order_svc.models import customers, orders
from order_svc.uow import ORDER_COLUMNS, order_from
from shared.db import HotQuery

_ORDER_VIEW = HotQuery(
    select(
        *ORDER_COLUMNS,
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
    order = order_from(row)
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
