"""inventory_svc's unit of work and the repositories it exposes on its one transaction."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from inventory_svc.domain import Line, Reservation, ReservationStatus, Stock
from inventory_svc.models import outbox, stock, stock_reservations
from shared.errors import Conflict
from shared.events import OrderCancelled, OrderCreated, OrderRejected
from shared.persistence.database import Database
from shared.persistence.held_rows import HeldRows
from shared.persistence.repository import Repository
from shared.persistence.unit_of_work import UnitOfWork


class Stocks(Repository[Stock]):
    """The stock of each SKU. The saga changes stocks only under their row locks, taken in sku
    order; every save still names the version it read."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        super().__init__(connection)
        self._rows = HeldRows(stock, key="sku")

    async def lock(self, skus: Collection[str]) -> None:
        """Lock these SKUs' stocks for the rest of the transaction, in one statement."""
        await self._rows.load(self.connection, skus, lock=True)

    async def get(self, sku: str) -> Stock | None:
        await self._rows.load(self.connection, [sku], lock=False)
        row = self._rows.get(sku)
        return None if row is None else self.seen(stock_from(row))

    async def locked(self, skus: Collection[str]) -> dict[str, Stock]:
        """The stocks of these SKUs that exist (the stock-managed ones), locked."""
        await self.lock(skus)
        rows = ((sku, self._rows.get(sku)) for sku in dict.fromkeys(skus))
        return {sku: self.seen(stock_from(row)) for sku, row in rows if row is not None}

    async def add(self, new: Stock) -> None:
        """Insert a new SKU's stock; `Conflict` if it has one already."""
        added = await self._rows.insert(
            self.connection,
            {
                "sku": new.sku,
                "on_hand": new.on_hand,
                "reserved": new.reserved,
                "version": new.version,
            },
        )
        if not added:
            raise Conflict(f"{new.sku!r} has a stock already")
        self.seen(new)

    async def save(self, changed: Stock, *, expected_version: int) -> None:
        values = {
            "on_hand": changed.on_hand,
            "reserved": changed.reserved,
            "version": changed.version,
            "updated_at": datetime.now(UTC),
        }
        self._rows.update(changed.sku, values, expected_version=expected_version)

    async def flush(self) -> None:
        await self._rows.flush(self.connection)


class Reservations(Repository[Reservation]):
    """Each order's stock decision. A decision is an insert that races on the order's key, and
    a release an update that names the version it read, so reading them unlocked is exact."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        super().__init__(connection)
        self._rows = HeldRows(stock_reservations, key="order_id")

    async def read(self, order_ids: Sequence[UUID]) -> None:
        """Read these orders' decisions in one statement."""
        await self._rows.load(self.connection, order_ids, lock=False)

    def skus_held(self, order_ids: Collection[UUID]) -> set[str]:
        """The SKUs that the reservations already read for these orders hold."""
        return {
            item["sku"]
            for order_id in order_ids
            if (row := self._rows.get(order_id)) is not None
            and row["status"] == ReservationStatus.RESERVED
            for item in json.loads(row["items"])
        }

    async def get(self, order_id: UUID) -> Reservation | None:
        await self.read([order_id])
        row = self._rows.get(order_id)
        return None if row is None else self.seen(reservation_from(row))

    async def add(self, reservation: Reservation) -> None:
        """Record an order's decision; `Conflict` if it has one already."""
        values = {
            "order_id": reservation.order_id,
            "status": reservation.status.value,
            "items": _items_json(reservation.items),
            "version": reservation.version,
        }
        if not await self._rows.insert(self.connection, values):
            raise Conflict(f"the stock of order {reservation.order_id} is decided already")
        self.seen(reservation)

    async def save(self, reservation: Reservation, *, expected_version: int) -> None:
        values = {
            "status": reservation.status.value,
            "version": reservation.version,
            "updated_at": datetime.now(UTC),
        }
        self._rows.update(reservation.order_id, values, expected_version=expected_version)

    async def flush(self) -> None:
        await self._rows.flush(self.connection)


class InventoryUnitOfWork(UnitOfWork):
    stocks: Stocks
    reservations: Reservations

    def open(self, connection: asyncpg.Connection) -> Sequence[Repository[Any]]:
        self.stocks = Stocks(connection)
        self.reservations = Reservations(connection)
        return (self.stocks, self.reservations)

    async def preload(self, events: Sequence[Any]) -> None:
        """Every saga event reads its order's decision and locks the stocks it changes: the
        batch's decisions are read at once, then every stock they change locked at once, in
        sku order (an order's lines to reserve, a reservation's items to release)."""
        saga = [e for e in events if isinstance(e, OrderCreated | OrderRejected | OrderCancelled)]
        await self.reservations.read([e.order_id for e in saga])
        created = {item.sku for e in saga if isinstance(e, OrderCreated) for item in e.items}
        ended = [e.order_id for e in saga if not isinstance(e, OrderCreated)]
        await self.stocks.lock(created | self.reservations.skus_held(ended))


def unit_of_work(database: Database) -> InventoryUnitOfWork:
    return InventoryUnitOfWork(database, outbox_table=outbox, source="/inventory_svc")


def stock_from(row: Mapping[str, Any]) -> Stock:
    return Stock(
        sku=row["sku"], on_hand=row["on_hand"], reserved=row["reserved"], version=row["version"]
    )


def reservation_from(row: Mapping[str, Any]) -> Reservation:
    return Reservation(
        order_id=row["order_id"],
        status=ReservationStatus(row["status"]),
        items=tuple(Line(**item) for item in json.loads(row["items"])),
        version=row["version"],
    )


def _items_json(items: Collection[Line]) -> str:
    """`items` as the JSON the column holds (the driver passes JSON as text)."""
    return json.dumps([{"sku": item.sku, "quantity": item.quantity} for item in items])
