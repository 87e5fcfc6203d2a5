"""order_svc's unit of work and the repositories it exposes on its one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Self
from uuid import UUID

import asyncpg
from sqlalchemy import and_, bindparam, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from order_svc.domain import Customer, Item, Order, OrderStatus
from order_svc.models import customers, order_items, orders, outbox
from shared.envelope import CloudEvent
from shared.events import CreditRejectionReason
from shared.uow import UnitOfWork
from shared.versioning import apply_if_newer, save_versioned

# The statements of the saga's hot path, built once with bound parameters: building a
# statement on every call cost more than running it (see README Performance).
_ORDER = select(orders).where(orders.c.id == bindparam("order_id"))
_ORDER_FOR_UPDATE = _ORDER.with_for_update()
_ITEMS_OF = (
    select(order_items)
    .where(order_items.c.order_id.in_(bindparam("order_ids", expanding=True)))
    .order_by(order_items.c.order_id, order_items.c.position)
)
_ADD_ORDER = (
    pg_insert(orders)
    .values({column.name: bindparam(column.name) for column in orders.columns})
    .on_conflict_do_nothing(constraint="uq_orders_idempotency_key")
    .returning(orders.c.id)
)


class Orders:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, order_id: UUID, *, for_update: bool = False) -> Order | None:
        query = _ORDER_FOR_UPDATE if for_update else _ORDER
        row = (await self._connection.execute(query, {"order_id": order_id})).first()
        if row is None:
            return None
        return (await self._with_items([row]))[0]

    async def by_idempotency_key(self, user_id: UUID, key: str) -> tuple[Order, str] | None:
        row = (
            await self._connection.execute(
                select(orders).where(orders.c.user_id == user_id, orders.c.idempotency_key == key)
            )
        ).first()
        if row is None:
            return None
        return (await self._with_items([row]))[0], row.request_fingerprint

    async def add(
        self, order: Order, *, idempotency_key: str | None, fingerprint: str | None
    ) -> bool:
        """Insert a new order; False if the caller already used this idempotency key."""
        result = await self._connection.execute(
            _ADD_ORDER,
            {
                "id": order.id,
                "user_id": order.user_id,
                "status": order.status,
                "reason": order.reason,
                "total": order.total,
                "version": order.version,
                "created_at": order.created_at,
                "updated_at": order.updated_at,
                "idempotency_key": idempotency_key,
                "request_fingerprint": fingerprint,
            },
        )
        if result.first() is None:
            return False
        await self._connection.execute(
            insert(order_items),
            [
                {
                    "order_id": order.id,
                    "position": position,
                    "sku": item.sku,
                    "quantity": item.quantity,
                    "unit_price": item.unit_price,
                }
                for position, item in enumerate(order.items)
            ],
        )
        return True

    async def save(self, order: Order, *, expected_version: int) -> None:
        await save_versioned(
            self._connection,
            orders,
            key=order.id,
            expected_version=expected_version,
            values={
                "status": order.status,
                "reason": order.reason,
                "version": order.version,
                "updated_at": order.updated_at,
            },
        )

    async def page(
        self,
        user_id: UUID,
        *,
        status: OrderStatus | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[Order]:
        """The user's orders newest first, starting after the (created_at, id) of a cursor."""
        query = select(orders).where(orders.c.user_id == user_id)
        if status is not None:
            query = query.where(orders.c.status == status)
        if after is not None:
            created_at, order_id = after
            query = query.where(
                or_(
                    orders.c.created_at < created_at,
                    and_(orders.c.created_at == created_at, orders.c.id < order_id),
                )
            )
        query = query.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
        return await self._with_items((await self._connection.execute(query)).all())

    async def _with_items(self, rows: Sequence[Row[Any]]) -> list[Order]:
        if not rows:
            return []
        item_rows = await self._connection.execute(
            _ITEMS_OF, {"order_ids": [row.id for row in rows]}
        )
        items: dict[UUID, list[Item]] = {}
        for item in item_rows:
            items.setdefault(item.order_id, []).append(
                Item(sku=item.sku, quantity=item.quantity, unit_price=item.unit_price)
            )
        return [order_from(row._mapping, items.get(row.id, ())) for row in rows]


def order_from(row: Mapping[str, Any] | asyncpg.Record, items: Iterable[Item]) -> Order:
    """An order from a row of `orders` (through SQLAlchemy or the driver) and its items."""
    return Order(
        id=row["id"],
        user_id=row["user_id"],
        status=OrderStatus(row["status"]),
        reason=CreditRejectionReason(row["reason"]) if row["reason"] else None,
        items=tuple(items),
        total=row["total"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class Customers:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def get(self, user_id: UUID) -> Customer | None:
        row = (
            await self._connection.execute(select(customers).where(customers.c.id == user_id))
        ).first()
        if row is None:
            return None
        return Customer(id=row.id, name=row.name, status=row.status, version=row.version)

    async def apply_if_newer(
        self, user_id: UUID, *, version: int, name: str | None = None, status: str | None = None
    ) -> None:
        groups: dict[str, Mapping[str, Any]] = {}
        if name is not None:
            groups["name_version"] = {"name": name}
        if status is not None:
            groups["status_version"] = {"status": status}
        await apply_if_newer(
            self._connection, customers, key=user_id, version=version, groups=groups
        )


class OrderUnitOfWork(UnitOfWork):
    orders: Orders
    customers: Customers

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.orders = Orders(self.connection)
        self.customers = Customers(self.connection)
        return self

    def collect(self, order: Order) -> None:
        """Take the events the order raised into this unit of work."""
        self.emit(*order.events)
        order.events.clear()


def unit_of_work(engine: AsyncEngine, cause: CloudEvent | None = None) -> OrderUnitOfWork:
    return OrderUnitOfWork(engine, outbox_table=outbox, source="/order_svc", cause=cause)
