"""inventory_svc's use cases: HTTP commands and the saga's event handlers, over a unit of work.

Each handler loads what it needs through the unit of work's repositories, lets the domain
decide, saves with the version it loaded (`WHERE version = :expected`) and commits: the events
the domain raised on what it loaded or added go to the outbox with the change. Saga handlers
lock the stocks they change, in sku order, so that orders racing for the last units of a SKU
are decided one after the other and never oversell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from inventory_svc.domain import Line, Reservation, ReservationStatus, Stock, reserve
from inventory_svc.queries import StockQueries
from inventory_svc.uow import InventoryUnitOfWork
from shared.errors import NotFound, PreconditionRequired, StaleVersion
from shared.events import OrderCancelled, OrderCreated, OrderRejected
from shared.messaging.envelope import CloudEvent


@dataclass(frozen=True, kw_only=True)
class SetStock:
    sku: str
    on_hand: int
    # The version the caller holds (If-Match); None to create the SKU's stock.
    expected_version: int | None


@dataclass(frozen=True, kw_only=True)
class StockSet:
    stock: Stock
    created: bool


async def set_stock(command: SetStock, uow: InventoryUnitOfWork) -> StockSet:
    """Create a SKU's stock, or set what is on hand of an existing one (conditionally)."""
    async with uow:
        current = await uow.stocks.get(command.sku)
        if current is None:
            if command.expected_version is not None:
                raise StaleVersion(f"{command.sku!r} has no stock to be at any version")
            created = Stock.create(sku=command.sku, on_hand=command.on_hand)
            await uow.stocks.add(created)
            await uow.commit()
            return StockSet(stock=created, created=True)
        if command.expected_version is None:
            raise PreconditionRequired(
                "this SKU has a stock: set it with an If-Match header with the ETag you hold"
            )
        if current.version != command.expected_version:
            raise StaleVersion(
                f"the stock is at version {current.version}, not {command.expected_version}"
            )
        current.adjust(command.on_hand)
        await uow.stocks.save(current, expected_version=command.expected_version)
        await uow.commit()
    return StockSet(stock=current, created=False)


async def get_stock(sku: str, queries: StockQueries) -> Stock:
    found = await queries.stock(sku)
    if found is None:
        raise NotFound(f"{sku!r} has no stock record")
    return found


async def on_order_created(event: OrderCreated, _: CloudEvent, uow: InventoryUnitOfWork) -> None:
    """Saga step 2: reserve every stock-managed line of the order, or none.

    An order is decided once: if it has a reservation row already (decided before, or ended
    before we got here), there is nothing to do. A concurrent decision or tombstone for the
    same order conflicts with this one on the order's key, and the event is applied again.
    """
    lines = [Line(sku=item.sku, quantity=item.quantity) for item in event.items]
    stocks = await uow.stocks.locked([line.sku for line in lines])
    if await uow.reservations.get(event.order_id) is not None:
        return
    loaded = _versions(stocks)
    await uow.reservations.add(reserve(event.order_id, lines, stocks))
    await _save_changed(uow, stocks, loaded)


async def on_order_rejected(event: OrderRejected, _: CloudEvent, uow: InventoryUnitOfWork) -> None:
    await _release(event.order_id, uow)


async def on_order_cancelled(
    event: OrderCancelled, _: CloudEvent, uow: InventoryUnitOfWork
) -> None:
    await _release(event.order_id, uow)


async def _release(order_id: UUID, uow: InventoryUnitOfWork) -> None:
    """Saga compensation: give back what the order holds, or make sure it never holds any."""
    reservation = await uow.reservations.get(order_id)
    if reservation is None:
        await uow.reservations.add(Reservation.tombstone(order_id))
        return
    if reservation.status is not ReservationStatus.RESERVED:
        return
    stocks = await uow.stocks.locked([item.sku for item in reservation.items])
    loaded_version, loaded = reservation.version, _versions(stocks)
    reservation.release(stocks)
    await uow.reservations.save(reservation, expected_version=loaded_version)
    await _save_changed(uow, stocks, loaded)


def _versions(stocks: Mapping[str, Stock]) -> dict[str, int]:
    return {sku: stock.version for sku, stock in stocks.items()}


async def _save_changed(
    uow: InventoryUnitOfWork, stocks: Mapping[str, Stock], loaded: Mapping[str, int]
) -> None:
    for sku, stock in stocks.items():
        if stock.version != loaded[sku]:
            await uow.stocks.save(stock, expected_version=loaded[sku])
