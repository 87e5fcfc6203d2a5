"""inventory_svc's handlers against a real PostgreSQL: setting stock and its side of the saga.

Saga handlers are driven the way the consumer drives them: the event decoded from its CloudEvent
body, the handler inside `async with` a unit of work and `caused_by` that envelope, then commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from inventory_svc.domain import ReservationStatus, Stock
from inventory_svc.handlers import (
    SetStock,
    on_order_cancelled,
    on_order_created,
    on_order_rejected,
    set_stock,
)
from inventory_svc.models import outbox
from inventory_svc.uow import InventoryUnitOfWork, unit_of_work
from shared.errors import Conflict, PreconditionRequired, StaleVersion
from shared.events import (
    CreditRejectionReason,
    DomainEvent,
    EventData,
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderRejected,
)
from shared.messaging.envelope import CloudEvent, decode, encode, wrap
from shared.persistence.database import Database, dsn
from tests.integration.rows import outbox_events

pytestmark = pytest.mark.integration

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")

SagaHandler = Callable[[Any, CloudEvent, InventoryUnitOfWork], Awaitable[None]]


async def stocked(database: Database, sku: str, on_hand: int) -> Stock:
    done = await set_stock(
        SetStock(sku=sku, on_hand=on_hand, expected_version=None), unit_of_work(database)
    )
    return done.stock


def order_created(order_id: UUID, *lines: tuple[str, int]) -> OrderCreated:
    return OrderCreated(
        order_id=order_id,
        user_id=USER_ID,
        items=[OrderItem(sku=sku, quantity=quantity, unit_price=100) for sku, quantity in lines],
        total=100 * sum(quantity for _, quantity in lines),
    )


def order_rejected(order_id: UUID) -> OrderRejected:
    return OrderRejected(
        order_id=order_id, user_id=USER_ID, reason=CreditRejectionReason.INSUFFICIENT_CREDIT
    )


def order_cancelled(order_id: UUID) -> OrderCancelled:
    return OrderCancelled(
        order_id=order_id, user_id=USER_ID, total=100, previous_status="confirmed"
    )


def as_delivered(data: EventData, order_id: UUID) -> tuple[CloudEvent, Any]:
    event = DomainEvent(data=data, subject=order_id, aggregate_version=1, correlation_id=order_id)
    return decode(encode(wrap(event, source="/order_svc")))


async def deliver(database: Database, handler: SagaHandler, data: EventData) -> None:
    """Handle an order_svc event as the consumer would (without the inbox: a new delivery)."""
    envelope, decoded = as_delivered(data, data.order_id)  # type: ignore[attr-defined]
    async with unit_of_work(database) as uow:
        with uow.caused_by(envelope):
            await handler(decoded, envelope, uow)
        await uow.commit()


async def deliver_together(
    database: Database, deliveries: Sequence[tuple[SagaHandler, EventData]]
) -> None:
    """Several events in one transaction, as the consumer applies a batch."""
    delivered = [
        (handler, *as_delivered(data, data.order_id))  # type: ignore[attr-defined]
        for handler, data in deliveries
    ]
    async with unit_of_work(database) as uow:
        await uow.preload([decoded for _, _, decoded in delivered])
        for handler, envelope, decoded in delivered:
            with uow.caused_by(envelope):
                await handler(decoded, envelope, uow)
        await uow.commit()


async def stored(database: Database, sku: str) -> tuple[int, int, int]:
    """(on_hand, reserved, version) of the SKU's stock."""
    async with unit_of_work(database) as uow:
        found = await uow.stocks.get(sku)
    assert found is not None
    return found.on_hand, found.reserved, found.version


async def status_of(database: Database, order_id: UUID) -> ReservationStatus | None:
    async with unit_of_work(database) as uow:
        reservation = await uow.reservations.get(order_id)
    return reservation.status if reservation else None


async def saga_events(database: Database) -> list[CloudEvent]:
    events = await outbox_events(database, outbox)
    return [e for e in events if e.type != "inventory.stock_adjusted"]


# Setting stock.


async def test_a_new_skus_stock_is_created_at_version_1_with_its_event(
    inventory_database: Database,
) -> None:
    created = await stocked(inventory_database, "SKU-1", 10)

    assert (created.on_hand, created.reserved, created.version) == (10, 0, 1)
    assert await stored(inventory_database, "SKU-1") == (10, 0, 1)
    [adjusted] = await outbox_events(inventory_database, outbox)
    assert adjusted.type == "inventory.stock_adjusted"
    assert adjusted.subject == "SKU-1"
    assert adjusted.source == "/inventory_svc"
    assert adjusted.aggregateversion == 1
    assert adjusted.data == {"sku": "SKU-1", "on_hand": 10, "reserved": 0}


async def test_setting_an_existing_stock_at_its_version_changes_it(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "SKU-1", 10)

    done = await set_stock(
        SetStock(sku="SKU-1", on_hand=7, expected_version=1), unit_of_work(inventory_database)
    )

    assert not done.created
    assert await stored(inventory_database, "SKU-1") == (7, 0, 2)
    assert [e.aggregateversion for e in await outbox_events(inventory_database, outbox)] == [1, 2]


async def test_setting_an_existing_stock_without_a_version_is_refused(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "SKU-1", 10)

    with pytest.raises(PreconditionRequired):
        await stocked(inventory_database, "SKU-1", 7)

    assert await stored(inventory_database, "SKU-1") == (10, 0, 1)


async def test_setting_a_stock_at_a_stale_version_is_refused(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "SKU-1", 10)

    with pytest.raises(StaleVersion):
        await set_stock(
            SetStock(sku="SKU-1", on_hand=7, expected_version=2), unit_of_work(inventory_database)
        )

    assert await stored(inventory_database, "SKU-1") == (10, 0, 1)


async def test_setting_a_missing_stock_at_a_version_is_refused(
    inventory_database: Database,
) -> None:
    with pytest.raises(StaleVersion):
        await set_stock(
            SetStock(sku="SKU-1", on_hand=7, expected_version=1), unit_of_work(inventory_database)
        )

    assert await outbox_events(inventory_database, outbox) == []


async def test_on_hand_below_reserved_is_a_conflict_and_changes_nothing(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "SKU-1", 10)
    await deliver(inventory_database, on_order_created, order_created(uuid4(), ("SKU-1", 6)))

    with pytest.raises(Conflict):
        await set_stock(
            SetStock(sku="SKU-1", on_hand=5, expected_version=2), unit_of_work(inventory_database)
        )

    assert await stored(inventory_database, "SKU-1") == (10, 6, 2)


async def test_the_database_refuses_reserved_above_on_hand(inventory_db: str) -> None:
    connection = await asyncpg.connect(dsn(inventory_db))
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "INSERT INTO stock (sku, on_hand, reserved, version) VALUES ('X', 1, 2, 1)"
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "INSERT INTO stock (sku, on_hand, reserved, version) VALUES ('X', 1, -1, 1)"
            )
    finally:
        await connection.close()


# The saga.


async def test_an_order_with_available_lines_reserves_them(inventory_database: Database) -> None:
    await stocked(inventory_database, "A", 5)
    await stocked(inventory_database, "B", 5)
    order_id = uuid4()

    await deliver(
        inventory_database,
        on_order_created,
        order_created(order_id, ("A", 2), ("SERVICE", 9), ("B", 1), ("A", 1)),
    )

    assert await stored(inventory_database, "A") == (5, 3, 2)
    assert await stored(inventory_database, "B") == (5, 1, 2)
    assert await status_of(inventory_database, order_id) is ReservationStatus.RESERVED
    [reserved] = await saga_events(inventory_database)
    assert reserved.type == "inventory.stock_reserved"
    assert reserved.subject == str(order_id)
    assert reserved.aggregateversion == 1
    assert reserved.correlationid == str(order_id)
    assert reserved.data == {
        "order_id": str(order_id),
        "items": [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}],
    }


async def test_an_order_without_stock_managed_lines_is_reserved_with_no_items(
    inventory_database: Database,
) -> None:
    order_id = uuid4()

    await deliver(inventory_database, on_order_created, order_created(order_id, ("DIGITAL", 1)))

    [reserved] = await saga_events(inventory_database)
    assert reserved.type == "inventory.stock_reserved"
    assert reserved.data == {"order_id": str(order_id), "items": []}


async def test_an_order_short_of_one_sku_reserves_nothing_and_names_it(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "A", 5)
    await stocked(inventory_database, "B", 1)
    order_id = uuid4()

    await deliver(inventory_database, on_order_created, order_created(order_id, ("A", 2), ("B", 2)))

    assert await stored(inventory_database, "A") == (5, 0, 1)
    assert await stored(inventory_database, "B") == (1, 0, 1)
    assert await status_of(inventory_database, order_id) is ReservationStatus.REJECTED
    [rejected] = await saga_events(inventory_database)
    assert rejected.type == "inventory.stock_rejected"
    assert rejected.data == {"order_id": str(order_id), "reason": "out_of_stock", "skus": ["B"]}


async def test_an_order_created_twice_is_decided_once(inventory_database: Database) -> None:
    await stocked(inventory_database, "A", 5)
    order_id = uuid4()

    for _ in range(2):
        await deliver(inventory_database, on_order_created, order_created(order_id, ("A", 2)))

    assert await stored(inventory_database, "A") == (5, 2, 2)
    assert [e.type for e in await saga_events(inventory_database)] == ["inventory.stock_reserved"]


@pytest.mark.parametrize(
    ("handler", "ended"),
    [(on_order_rejected, order_rejected), (on_order_cancelled, order_cancelled)],
    ids=["rejected", "cancelled"],
)
async def test_an_ended_order_releases_its_stock(
    inventory_database: Database, handler: SagaHandler, ended: Callable[[UUID], EventData]
) -> None:
    await stocked(inventory_database, "A", 5)
    order_id = uuid4()
    await deliver(inventory_database, on_order_created, order_created(order_id, ("A", 2)))

    await deliver(inventory_database, handler, ended(order_id))

    assert await stored(inventory_database, "A") == (5, 0, 3)
    assert await status_of(inventory_database, order_id) is ReservationStatus.RELEASED
    released = (await saga_events(inventory_database))[-1]
    assert released.type == "inventory.stock_released"
    assert released.subject == str(order_id)
    assert released.aggregateversion == 2
    assert released.data == {"order_id": str(order_id), "items": [{"sku": "A", "quantity": 2}]}


async def test_an_order_ended_twice_releases_its_stock_once(inventory_database: Database) -> None:
    await stocked(inventory_database, "A", 5)
    order_id = uuid4()
    await deliver(inventory_database, on_order_created, order_created(order_id, ("A", 2)))

    await deliver(inventory_database, on_order_rejected, order_rejected(order_id))
    await deliver(inventory_database, on_order_cancelled, order_cancelled(order_id))

    assert await stored(inventory_database, "A") == (5, 0, 3)
    assert [e.type for e in await saga_events(inventory_database)] == [
        "inventory.stock_reserved",
        "inventory.stock_released",
    ]


@pytest.mark.parametrize(
    ("handler", "ended"),
    [(on_order_rejected, order_rejected), (on_order_cancelled, order_cancelled)],
    ids=["rejected", "cancelled"],
)
async def test_an_order_ended_before_it_was_created_never_reserves_stock(
    inventory_database: Database, handler: SagaHandler, ended: Callable[[UUID], EventData]
) -> None:
    await stocked(inventory_database, "A", 5)
    order_id = uuid4()

    await deliver(inventory_database, handler, ended(order_id))
    await deliver(inventory_database, on_order_created, order_created(order_id, ("A", 2)))

    assert await stored(inventory_database, "A") == (5, 0, 1)
    assert await status_of(inventory_database, order_id) is ReservationStatus.CANCELLED
    assert await saga_events(inventory_database) == []


async def test_ending_an_out_of_stock_order_releases_nothing(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "A", 1)
    order_id = uuid4()
    await deliver(inventory_database, on_order_created, order_created(order_id, ("A", 2)))

    await deliver(inventory_database, on_order_rejected, order_rejected(order_id))

    assert await status_of(inventory_database, order_id) is ReservationStatus.REJECTED
    assert [e.type for e in await saga_events(inventory_database)] == ["inventory.stock_rejected"]


async def test_a_batch_reserves_and_releases_in_delivery_order(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "A", 3)
    first, second, third = uuid4(), uuid4(), uuid4()

    await deliver_together(
        inventory_database,
        [
            (on_order_created, order_created(first, ("A", 2))),
            (on_order_created, order_created(second, ("A", 2))),
            (on_order_cancelled, order_cancelled(first)),
            (on_order_created, order_created(third, ("A", 3))),
        ],
    )

    assert await stored(inventory_database, "A") == (3, 3, 4)
    assert [e.type for e in await saga_events(inventory_database)] == [
        "inventory.stock_reserved",
        "inventory.stock_rejected",
        "inventory.stock_released",
        "inventory.stock_reserved",
    ]


async def test_a_batch_releases_a_reservation_made_before_it(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "A", 3)
    await stocked(inventory_database, "B", 3)
    reserved, created = uuid4(), uuid4()
    await deliver(inventory_database, on_order_created, order_created(reserved, ("A", 3)))

    await deliver_together(
        inventory_database,
        [
            (on_order_created, order_created(created, ("B", 1))),
            (on_order_rejected, order_rejected(reserved)),
        ],
    )

    assert await stored(inventory_database, "A") == (3, 0, 3)
    assert await stored(inventory_database, "B") == (3, 1, 2)


async def test_concurrent_orders_for_the_last_units_never_oversell(
    inventory_database: Database,
) -> None:
    await stocked(inventory_database, "A", 3)
    orders = [uuid4() for _ in range(8)]

    await asyncio.gather(
        *(
            deliver(inventory_database, on_order_created, order_created(order_id, ("A", 1)))
            for order_id in orders
        )
    )

    assert await stored(inventory_database, "A") == (3, 3, 4)
    statuses = [await status_of(inventory_database, order_id) for order_id in orders]
    assert statuses.count(ReservationStatus.RESERVED) == 3
    assert statuses.count(ReservationStatus.REJECTED) == 5
