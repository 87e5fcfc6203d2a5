"""user_svc's handlers against a real PostgreSQL: registration and its side of the credit saga.

Saga handlers are driven the way the consumer drives them: the event decoded from its CloudEvent
body, the handler inside `async with` a unit of work and `caused_by` that envelope, then commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal
from uuid import UUID, uuid4

import pytest

from shared.errors import Conflict
from shared.events import (
    DomainEvent,
    EventData,
    OrderCancelled,
    OrderCreated,
    OrderItem,
    OrderRejected,
    StockRejectionReason,
)
from shared.messaging.envelope import CloudEvent, decode, encode, wrap
from shared.persistence.database import Database
from tests.integration.locks import wait_until_a_backend_waits_on_a_lock
from tests.integration.rows import outbox_events
from user_svc.domain import ReservationState, User
from user_svc.handlers import (
    RegisterUser,
    on_order_cancelled,
    on_order_created,
    on_order_rejected,
    register_user,
)
from user_svc.models import outbox
from user_svc.passwords import Passwords
from user_svc.uow import UserUnitOfWork, unit_of_work

pytestmark = pytest.mark.integration

CREDIT_LIMIT = 10_000

SagaHandler = Callable[[Any, CloudEvent, UserUnitOfWork], Awaitable[None]]


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords()


async def register(
    database: Database, passwords: Passwords, email: str = "ada@example.com"
) -> User:
    command = RegisterUser(
        email=email, name="Ada", password="correct horse", credit_limit=CREDIT_LIMIT
    )
    return await register_user(command, unit_of_work(database), passwords)


def order_created(user_id: UUID, order_id: UUID, total: int) -> OrderCreated:
    return OrderCreated(
        order_id=order_id,
        user_id=user_id,
        items=[OrderItem(sku="SKU-1", quantity=1, unit_price=total)],
        total=total,
    )


def order_cancelled(
    user_id: UUID,
    order_id: UUID,
    total: int,
    previous_status: Literal["pending", "confirmed"] = "confirmed",
) -> OrderCancelled:
    return OrderCancelled(
        order_id=order_id, user_id=user_id, total=total, previous_status=previous_status
    )


def order_rejected(user_id: UUID, order_id: UUID) -> OrderRejected:
    return OrderRejected(
        order_id=order_id, user_id=user_id, reason=StockRejectionReason.OUT_OF_STOCK
    )


async def deliver(
    database: Database, handler: SagaHandler, data: EventData, order_id: UUID
) -> None:
    """Handle an order_svc event as the consumer would (without the inbox: a new delivery)."""
    envelope, decoded = as_delivered(data, order_id)
    async with unit_of_work(database) as uow:
        with uow.caused_by(envelope):
            await handler(decoded, envelope, uow)
        await uow.commit()


def as_delivered(data: EventData, order_id: UUID) -> tuple[CloudEvent, Any]:
    """An order_svc event as a consumer receives it: its envelope and its decoded data."""
    event = DomainEvent(data=data, subject=order_id, aggregate_version=1, correlation_id=order_id)
    return decode(encode(wrap(event, source="/order_svc")))


async def deliver_together(
    database: Database, deliveries: list[tuple[SagaHandler, EventData, UUID]]
) -> None:
    """Handle several events in one transaction, as the consumer applies a batch: the unit of
    work preloads their rows, then each handler runs in turn."""
    delivered = [(handler, *as_delivered(data, order_id)) for handler, data, order_id in deliveries]
    async with unit_of_work(database) as uow:
        await uow.preload([decoded for _, _, decoded in delivered])
        for handler, envelope, decoded in delivered:
            with uow.caused_by(envelope):
                await handler(decoded, envelope, uow)
        await uow.commit()


async def saga_events(database: Database) -> list[CloudEvent]:
    return [e for e in await outbox_events(database, outbox) if e.type != "user.registered"]


async def stored_user(database: Database, user_id: UUID) -> User:
    async with unit_of_work(database) as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    return user


async def reservation_state(database: Database, order_id: UUID) -> ReservationState | None:
    async with unit_of_work(database) as uow:
        reservation = await uow.reservations.get(order_id)
    return reservation.state if reservation else None


async def test_registering_a_taken_email_is_a_conflict_with_one_event(
    user_database: Database, passwords: Passwords
) -> None:
    await register(user_database, passwords, "ada@example.com")

    with pytest.raises(Conflict):
        await register(user_database, passwords, "ada@example.com")

    assert [e.type for e in await outbox_events(user_database, outbox)] == ["user.registered"]


async def test_an_order_within_credit_reserves_its_total(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()

    await deliver(
        user_database, on_order_created, order_created(user.id, order_id, 3_000), order_id
    )

    stored = await stored_user(user_database, user.id)
    assert (stored.credit_reserved, stored.version) == (3_000, 2)
    assert await reservation_state(user_database, order_id) is ReservationState.RESERVED
    [reserved] = await saga_events(user_database)
    assert reserved.type == "user.credit_reserved"
    assert reserved.data == {"user_id": str(user.id), "order_id": str(order_id), "amount": 3_000}
    assert reserved.aggregateversion == 2
    assert reserved.correlationid == str(order_id)


async def test_an_order_over_the_limit_is_rejected_for_insufficient_credit(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()

    await deliver(
        user_database,
        on_order_created,
        order_created(user.id, order_id, CREDIT_LIMIT + 1),
        order_id,
    )

    assert (await stored_user(user_database, user.id)).credit_reserved == 0
    [rejected] = await saga_events(user_database)
    assert rejected.type == "user.credit_rejected"
    assert rejected.data["reason"] == "insufficient_credit"


async def test_an_order_for_an_unknown_user_is_rejected_as_unknown_user(
    user_database: Database,
) -> None:
    user_id, order_id = uuid4(), uuid4()

    await deliver(user_database, on_order_created, order_created(user_id, order_id, 500), order_id)

    [rejected] = await outbox_events(user_database, outbox)
    assert rejected.type == "user.credit_rejected"
    assert rejected.data == {
        "user_id": str(user_id),
        "order_id": str(order_id),
        "amount": 500,
        "reason": "unknown_user",
    }
    assert rejected.correlationid == str(order_id)
    assert await reservation_state(user_database, order_id) is ReservationState.REJECTED


async def test_an_order_created_twice_is_decided_once(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()

    await deliver(
        user_database, on_order_created, order_created(user.id, order_id, 3_000), order_id
    )
    await deliver(
        user_database, on_order_created, order_created(user.id, order_id, 3_000), order_id
    )

    assert (await stored_user(user_database, user.id)).credit_reserved == 3_000
    assert [e.type for e in await saga_events(user_database)] == ["user.credit_reserved"]


async def test_an_order_cancelled_before_it_was_created_never_reserves_credit(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()

    cancelled = order_cancelled(user.id, order_id, 3_000, previous_status="pending")
    await deliver(user_database, on_order_cancelled, cancelled, order_id)
    await deliver(
        user_database, on_order_created, order_created(user.id, order_id, 3_000), order_id
    )

    stored = await stored_user(user_database, user.id)
    assert (stored.credit_reserved, stored.version) == (0, 1)
    assert await reservation_state(user_database, order_id) is ReservationState.CANCELLED
    assert await saga_events(user_database) == []


async def test_cancelling_a_reserved_order_releases_its_credit(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()
    await deliver(
        user_database, on_order_created, order_created(user.id, order_id, 3_000), order_id
    )

    await deliver(
        user_database, on_order_cancelled, order_cancelled(user.id, order_id, 3_000), order_id
    )

    stored = await stored_user(user_database, user.id)
    assert (stored.credit_reserved, stored.version) == (0, 3)
    assert await reservation_state(user_database, order_id) is ReservationState.RELEASED
    released = (await saga_events(user_database))[-1]
    assert released.type == "user.credit_released"
    assert released.data == {"user_id": str(user.id), "order_id": str(order_id), "amount": 3_000}
    assert released.aggregateversion == 3


async def test_a_cancellation_processed_twice_releases_the_credit_once(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()
    other_order_id = uuid4()
    await deliver(
        user_database, on_order_created, order_created(user.id, order_id, 3_000), order_id
    )
    await deliver(
        user_database,
        on_order_created,
        order_created(user.id, other_order_id, 2_000),
        other_order_id,
    )

    await deliver(
        user_database, on_order_cancelled, order_cancelled(user.id, order_id, 3_000), order_id
    )
    await deliver(
        user_database, on_order_cancelled, order_cancelled(user.id, order_id, 3_000), order_id
    )

    assert (await stored_user(user_database, user.id)).credit_reserved == 2_000
    assert [e.type for e in await saga_events(user_database)] == [
        "user.credit_reserved",
        "user.credit_reserved",
        "user.credit_released",
    ]


async def test_cancelling_a_rejected_order_releases_nothing(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()
    await deliver(
        user_database,
        on_order_created,
        order_created(user.id, order_id, CREDIT_LIMIT + 1),
        order_id,
    )

    await deliver(
        user_database,
        on_order_cancelled,
        order_cancelled(user.id, order_id, CREDIT_LIMIT + 1),
        order_id,
    )

    assert (await stored_user(user_database, user.id)).credit_reserved == 0
    assert await reservation_state(user_database, order_id) is ReservationState.REJECTED
    assert [e.type for e in await saga_events(user_database)] == ["user.credit_rejected"]


async def test_a_batch_of_two_orders_of_one_user_reserves_both_totals(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    first, second = uuid4(), uuid4()

    await deliver_together(
        user_database,
        [
            (on_order_created, order_created(user.id, first, 1_000), first),
            (on_order_created, order_created(user.id, second, 2_000), second),
        ],
    )

    stored = await stored_user(user_database, user.id)
    assert (stored.credit_reserved, stored.version) == (3_000, 3)
    assert [e.aggregateversion for e in await saga_events(user_database)] == [2, 3]


async def test_a_batch_holds_its_users_locked_from_its_start_until_it_commits(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    batched, concurrent = uuid4(), uuid4()
    envelope, event = as_delivered(order_created(user.id, batched, 1_000), batched)

    async with unit_of_work(user_database) as uow:
        await uow.preload([event])
        other = asyncio.create_task(
            deliver(
                user_database,
                on_order_created,
                order_created(user.id, concurrent, 2_000),
                concurrent,
            )
        )
        await wait_until_a_backend_waits_on_a_lock(user_database)
        with uow.caused_by(envelope):
            await on_order_created(event, envelope, uow)
        await uow.commit()
    await other

    stored = await stored_user(user_database, user.id)
    assert (stored.credit_reserved, stored.version) == (3_000, 3)
    assert [e.aggregateversion for e in await saga_events(user_database)] == [2, 3]


async def test_a_batch_fails_whole_when_an_order_it_decides_was_decided_under_it(
    user_database: Database,
) -> None:
    unknown_user, order_id = uuid4(), uuid4()
    envelope, event = as_delivered(order_created(unknown_user, order_id, 1_000), order_id)

    async with unit_of_work(user_database) as uow:
        await uow.preload([event])
        # No user row to lock: a cancellation decides the order meanwhile.
        await deliver(
            user_database,
            on_order_cancelled,
            order_cancelled(unknown_user, order_id, 1_000),
            order_id,
        )
        with uow.caused_by(envelope):
            await on_order_created(event, envelope, uow)
        with pytest.raises(Conflict):
            await uow.commit()

    assert await reservation_state(user_database, order_id) is ReservationState.CANCELLED
    assert await saga_events(user_database) == []


async def test_an_order_rejected_by_the_other_participant_releases_its_credit(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()
    await deliver(
        user_database, on_order_created, order_created(user.id, order_id, 3_000), order_id
    )

    await deliver(user_database, on_order_rejected, order_rejected(user.id, order_id), order_id)

    stored = await stored_user(user_database, user.id)
    assert (stored.credit_reserved, stored.version) == (0, 3)
    assert await reservation_state(user_database, order_id) is ReservationState.RELEASED
    released = (await saga_events(user_database))[-1]
    assert released.type == "user.credit_released"
    assert released.data == {"user_id": str(user.id), "order_id": str(order_id), "amount": 3_000}


async def test_an_order_rejected_before_it_was_created_never_reserves_credit(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()

    await deliver(user_database, on_order_rejected, order_rejected(user.id, order_id), order_id)
    await deliver(
        user_database, on_order_created, order_created(user.id, order_id, 3_000), order_id
    )

    stored = await stored_user(user_database, user.id)
    assert (stored.credit_reserved, stored.version) == (0, 1)
    assert await reservation_state(user_database, order_id) is ReservationState.CANCELLED
    assert await saga_events(user_database) == []


async def test_rejecting_an_order_whose_credit_was_rejected_releases_nothing(
    user_database: Database, passwords: Passwords
) -> None:
    user = await register(user_database, passwords)
    order_id = uuid4()
    await deliver(
        user_database,
        on_order_created,
        order_created(user.id, order_id, CREDIT_LIMIT + 1),
        order_id,
    )

    await deliver(user_database, on_order_rejected, order_rejected(user.id, order_id), order_id)

    assert await reservation_state(user_database, order_id) is ReservationState.REJECTED
    assert [e.type for e in await saga_events(user_database)] == ["user.credit_rejected"]
