"""Reads that answer HTTP queries: one statement each, outside any transaction.

A single statement already sees one consistent snapshot, so a read needs no BEGIN and no
ROLLBACK. With the order, its items (aggregated into arrays) and the customer's replica joined
in one statement, reading an order or a page of orders is one round trip to PostgreSQL.
Writes never come here: they go through the unit of work.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, bindparam, func, or_, select

from order_svc.domain import Customer, OrderStatus
from order_svc.handlers import OrderView
from order_svc.models import customers, orders
from order_svc.uow import ORDER_COLUMNS, order_from
from shared.persistence.database import Database
from shared.persistence.statements import Statement

_ORDER_VIEWS = select(
    *ORDER_COLUMNS,
    customers.c.name.label("customer_name"),
    customers.c.status.label("customer_status"),
    customers.c.version.label("customer_version"),
).outerjoin(customers, customers.c.id == orders.c.user_id)
_ORDER_VIEW = Statement(_ORDER_VIEWS.where(orders.c.id == bindparam("order_id")))
# Over the partial index of pending orders (migration 0003): the undecided rows only.
_PENDING = Statement(
    select(func.count().label("count"), func.min(orders.c.created_at).label("oldest")).where(
        orders.c.status == "pending"
    )
)


@functools.cache
def _page(*, by_status: bool, after_cursor: bool) -> Statement:
    """A user's orders newest first, optionally of one status and after a (created_at, id)
    cursor: four shapes, each compiled once."""
    query = _ORDER_VIEWS.where(orders.c.user_id == bindparam("user_id"))
    if by_status:
        query = query.where(orders.c.status == bindparam("status"))
    if after_cursor:
        created_at = bindparam("created_at", type_=orders.c.created_at.type)
        order_id = bindparam("order_id", type_=orders.c.id.type)
        query = query.where(
            or_(
                orders.c.created_at < created_at,
                and_(orders.c.created_at == created_at, orders.c.id < order_id),
            )
        )
    return Statement(
        query.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(bindparam("limit"))
    )


class OrderQueries:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def order(self, order_id: UUID) -> OrderView | None:
        async with self._database.connection() as connection:
            row = await _ORDER_VIEW.fetchrow(connection, order_id=order_id)
        return None if row is None else _view(row)

    async def page(
        self,
        user_id: UUID,
        *,
        status: OrderStatus | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> tuple[list[OrderView], bool]:
        """One page of the user's orders, newest first, and whether more follow."""
        statement = _page(by_status=status is not None, after_cursor=after is not None)
        created_at, order_id = after or (None, None)
        async with self._database.connection() as connection:
            rows = await statement.fetch(
                connection,
                user_id=user_id,
                status=status,
                created_at=created_at,
                order_id=order_id,
                limit=limit + 1,
            )
        return [_view(row) for row in rows[:limit]], len(rows) > limit

    async def pending(self) -> tuple[int, datetime | None]:
        """How many orders wait for their saga, and when the oldest of them was placed."""
        async with self._database.connection() as connection:
            row = await _PENDING.fetchrow(connection)
        assert row is not None
        return row["count"], row["oldest"]


def _view(row: Mapping[str, Any]) -> OrderView:
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
