"""Held rows (`shared.persistence.held_rows`) against a real PostgreSQL, through user_svc's
repositories: rows read up front (locked in key order), changes answered from memory and held
back until commit, where the database still has the last word on every insert.
"""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import asyncpg
import pytest

from shared.errors import Conflict
from shared.persistence.database import Database, dsn
from tests.integration.locks import wait_until_a_backend_waits_on_a_lock
from tests.integration.rows import outbox_types
from user_svc.domain import Reservation, ReservationState, User
from user_svc.models import outbox
from user_svc.uow import unit_of_work

pytestmark = pytest.mark.integration


async def add_user(database: Database, user_id: UUID | None = None) -> User:
    user = User.register(
        id=user_id or uuid4(),
        email=f"{uuid4().hex[:8]}@example.com",
        name="Ada",
        credit_limit=1_000,
    )
    async with unit_of_work(database) as uow:
        assert await uow.users.add(user, password_hash="x")
        await uow.commit()
    return user


async def is_locked(database: Database, user_id: UUID) -> bool:
    """Whether another transaction holds the user's row lock, asked without waiting for it."""
    connection = await asyncpg.connect(dsn(database.url))
    try:
        async with connection.transaction():
            await connection.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE NOWAIT", user_id)
    except asyncpg.LockNotAvailableError:
        return True
    finally:
        await connection.close()
    return False


async def test_a_batch_waiting_for_its_first_row_holds_none_of_the_rows_after_it(
    user_database: Database,
) -> None:
    """Rows are locked in key order, whatever order the batch names them in: two batches that
    share rows wait for each other, and never each hold a row the other waits for."""
    lower, higher = sorted([uuid4(), uuid4()])
    # Stored with the higher key first, so that storage order is not key order.
    await add_user(user_database, higher)
    await add_user(user_database, lower)
    holder, batch = unit_of_work(user_database), unit_of_work(user_database)

    async with holder, batch:
        await holder.users.lock([lower])
        locking = asyncio.create_task(batch.users.lock([higher, lower]))
        await wait_until_a_backend_waits_on_a_lock(user_database)

        assert not await is_locked(user_database, higher)

        await holder.commit()
        await locking
        assert await is_locked(user_database, higher)


async def test_a_row_read_unlocked_is_locked_when_asked_for_update_later(
    user_database: Database,
) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        await uow.users.get(user.id)
        assert not await is_locked(user_database, user.id)

        await uow.users.get(user.id, for_update=True)

        assert await is_locked(user_database, user.id)


async def test_locking_a_row_the_transaction_already_changed_is_refused(
    user_database: Database,
) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.rename("Grace")
        await uow.users.save(loaded, expected_version=1)

        with pytest.raises(RuntimeError, match="changed before they were locked"):
            await uow.users.get(user.id, for_update=True)


async def test_a_change_is_read_back_within_its_transaction_before_it_is_written(
    user_database: Database,
) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.rename("Grace")
        await uow.users.save(loaded, expected_version=1)

        again = await uow.users.get(user.id)

    assert again is not None
    assert (again.name, again.version) == ("Grace", 2)


async def test_changing_a_row_the_transaction_did_not_load_is_refused(
    user_database: Database,
) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        user.rename("Grace")
        with pytest.raises(LookupError, match="not loaded"):
            await uow.users.save(user, expected_version=1)


async def test_a_held_insert_that_loses_to_a_concurrent_one_fails_the_commit_with_conflict(
    user_database: Database,
) -> None:
    user_id, order_id = uuid4(), uuid4()
    uow = unit_of_work(user_database)

    async with uow:
        await uow.reservations.read([order_id])
        async with unit_of_work(user_database) as concurrent:
            await concurrent.reservations.add(
                Reservation.tombstone(order_id=order_id, user_id=user_id, amount=100)
            )
            await concurrent.commit()
        await uow.reservations.add(
            Reservation.reject_unknown_user(order_id=order_id, user_id=user_id, amount=100)
        )

        with pytest.raises(Conflict):
            await uow.commit()

    async with unit_of_work(user_database) as reader:
        stored = await reader.reservations.get(order_id)
    assert stored is not None
    assert stored.state is ReservationState.CANCELLED
    assert await outbox_types(user_database, outbox) == []


async def test_held_inserts_are_written_whatever_columns_a_later_change_gave_each(
    user_database: Database,
) -> None:
    """A row changed after it was held gains a column (`updated_at`) the others do not set."""
    user_id, released, kept = uuid4(), uuid4(), uuid4()

    async with unit_of_work(user_database) as uow:
        await uow.reservations.read([released, kept])
        for order_id in (released, kept):
            await uow.reservations.add(
                Reservation(
                    order_id=order_id,
                    user_id=user_id,
                    amount=100,
                    state=ReservationState.RESERVED,
                )
            )
        changed = await uow.reservations.get(released)
        assert changed is not None
        changed.state = ReservationState.RELEASED
        await uow.reservations.save(changed)
        await uow.commit()

    async with unit_of_work(user_database) as reader:
        states = [await reader.reservations.get(order_id) for order_id in (released, kept)]
    assert [s.state if s else None for s in states] == [
        ReservationState.RELEASED,
        ReservationState.RESERVED,
    ]
