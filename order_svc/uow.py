"""order_svc's unit of work and the repositories it exposes on its one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    ScalarSelect,
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert

from order_svc.domain import Customer, Item, Order, OrderStatus, Participant
from order_svc.models import customers, order_items, orders, outbox
from shared.events import (
    CreditRejectionReason,
    OrderRejectionReason,
    StockRejected,
    StockRejectionReason,
    StockReserved,
    UserCreditRejected,
    UserCreditReserved,
)
from shared.persistence.database import Database
from shared.persistence.held_rows import HeldRows
from shared.persistence.repository import Repository
from shared.persistence.statements import Statement
from shared.persistence.unit_of_work import UnitOfWork
from shared.persistence.versioning import apply_if_newer


def _items(column: ColumnElement[Any]) -> ScalarSelect[Any]:
    """One column of the order's items as an array, in their order: an order and its items
    come back in one row, so reading an order is one statement."""
    return (
        select(func.array_agg(aggregate_order_by(column, order_items.c.position)))
        .where(order_items.c.order_id == orders.c.id)
        .scalar_subquery()
    )


# An order with its items, as `order_from` reads it.
ORDER_COLUMNS = (
    orders.c.id,
    orders.c.user_id,
    orders.c.status,
    orders.c.reason,
    orders.c.credit_reserved,
    orders.c.stock_reserved,
    orders.c.total,
    orders.c.version,
    orders.c.created_at,
    orders.c.updated_at,
    _items(order_items.c.sku).label("skus"),
    _items(order_items.c.quantity).label("quantities"),
    _items(order_items.c.unit_price).label("unit_prices"),
)

_ORDER_BY_KEY = Statement(
    select(*ORDER_COLUMNS, orders.c.request_fingerprint).where(
        orders.c.user_id == bindparam("user_id"),
        orders.c.idempotency_key == bindparam("idempotency_key"),
    )
)
_ADD_ORDER = Statement(
    pg_insert(orders)
    .values({column.name: bindparam(column.name) for column in orders.columns})
    .on_conflict_do_nothing(constraint="uq_orders_idempotency_key")
    .returning(orders.c.id)
)
# The items travel as one array per column: one statement whatever their number.
_ITEM_COLUMNS = ("position", "sku", "quantity", "unit_price")
_ADD_ITEMS = Statement(
    insert(order_items).from_select(
        ["order_id", *_ITEM_COLUMNS],
        select(
            bindparam("order_id", type_=order_items.c.order_id.type),
            *(
                func.unnest(bindparam(column, type_=ARRAY(order_items.c[column].type)))
                for column in _ITEM_COLUMNS
            ),
        ),
    )
)
_CUSTOMER = Statement(select(customers).where(customers.c.id == bindparam("user_id")))


class Orders(Repository[Order]):
    def __init__(self, connection: asyncpg.Connection) -> None:
        super().__init__(connection)
        self._rows = HeldRows(orders, columns=ORDER_COLUMNS)

    async def lock(self, order_ids: Sequence[UUID]) -> None:
        """Lock these orders for the rest of the transaction, in one statement."""
        await self._rows.load(self.connection, order_ids, lock=True)

    async def get(self, order_id: UUID, *, for_update: bool = False) -> Order | None:
        await self._rows.load(self.connection, [order_id], lock=for_update)
        row = self._rows.get(order_id)
        return None if row is None else self.seen(order_from(row))

    async def by_idempotency_key(self, user_id: UUID, key: str) -> tuple[Order, str] | None:
        row = await _ORDER_BY_KEY.fetchrow(self.connection, user_id=user_id, idempotency_key=key)
        if row is None:
            return None
        return order_from(row), row["request_fingerprint"]

    async def add(
        self, order: Order, *, idempotency_key: str | None, fingerprint: str | None
    ) -> bool:
        """Insert a new order and its items; False if the caller already used this
        idempotency key."""
        added = await _ADD_ORDER.fetchrow(
            self.connection,
            id=order.id,
            user_id=order.user_id,
            status=order.status,
            reason=order.reason,
            credit_reserved=Participant.CREDIT in order.reserved_by,
            stock_reserved=Participant.STOCK in order.reserved_by,
            total=order.total,
            version=order.version,
            created_at=order.created_at,
            updated_at=order.updated_at,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
        )
        if added is None:
            return False
        await _ADD_ITEMS.execute(
            self.connection,
            order_id=order.id,
            position=list(range(len(order.items))),
            sku=[item.sku for item in order.items],
            quantity=[item.quantity for item in order.items],
            unit_price=[item.unit_price for item in order.items],
        )
        self.seen(order)
        return True

    async def save(self, order: Order, *, expected_version: int) -> None:
        values = {
            "status": order.status,
            "reason": order.reason,
            "credit_reserved": Participant.CREDIT in order.reserved_by,
            "stock_reserved": Participant.STOCK in order.reserved_by,
            "version": order.version,
            "updated_at": order.updated_at,
        }
        self._rows.update(order.id, values, expected_version=expected_version)

    async def flush(self) -> None:
        await self._rows.flush(self.connection)


def order_from(row: Mapping[str, Any]) -> Order:
    """An order from a row of `ORDER_COLUMNS`."""
    items = zip(row["skus"] or (), row["quantities"] or (), row["unit_prices"] or (), strict=True)
    return Order(
        id=row["id"],
        user_id=row["user_id"],
        status=OrderStatus(row["status"]),
        reason=rejection_reason(row["reason"]) if row["reason"] else None,
        reserved_by=frozenset(
            participant
            for participant, held in (
                (Participant.CREDIT, row["credit_reserved"]),
                (Participant.STOCK, row["stock_reserved"]),
            )
            if held
        ),
        items=tuple(Item(sku=s, quantity=q, unit_price=p) for s, q, p in items),
        total=row["total"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def rejection_reason(value: str) -> OrderRejectionReason:
    """A stored reason as the enumeration of the participant that gave it."""
    try:
        return CreditRejectionReason(value)
    except ValueError:
        return StockRejectionReason(value)


class Customers:
    """The replica of users: state copies, applied only where newer; it raises no events."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def get(self, user_id: UUID) -> Customer | None:
        row = await _CUSTOMER.fetchrow(self._connection, user_id=user_id)
        if row is None:
            return None
        return Customer(
            id=row["id"], name=row["name"], status=row["status"], version=row["version"]
        )

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

    def open(self, connection: asyncpg.Connection) -> Sequence[Repository[Any]]:
        self.orders = Orders(connection)
        self.customers = Customers(connection)
        return (self.orders,)

    async def preload(self, events: Sequence[Any]) -> None:
        """Every participant's decision starts by locking its order: the batch's orders are
        locked at once."""
        decisions = UserCreditReserved | UserCreditRejected | StockReserved | StockRejected
        await self.orders.lock([e.order_id for e in events if isinstance(e, decisions)])


def unit_of_work(database: Database) -> OrderUnitOfWork:
    return OrderUnitOfWork(database, outbox_table=outbox, source="/order_svc")
