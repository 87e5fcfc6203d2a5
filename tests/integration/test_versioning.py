"""Versioned rows against a real PostgreSQL: one winner per race, replicas converge.

A service's own aggregates (through its repositories and handlers): a change is held back until
commit and written `WHERE version = <the version read>`, so of writers racing from the same
version exactly one matches, and the others fail with `StaleVersion` and change nothing.
`apply_if_newer` (through order_svc's customers replica): any order of delivery, with or without
duplicates, ends in the in-order state.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest

from order_svc import handlers as order_handlers
from order_svc.domain import Customer, Item, OrderStatus
from order_svc.models import outbox as order_outbox
from order_svc.queries import OrderQueries
from order_svc.uow import unit_of_work as order_unit_of_work
from shared.errors import StaleVersion
from shared.persistence.database import Database, drop_database
from tests.integration.locks import wait_until_a_backend_waits_on_a_lock
from tests.integration.rows import outbox_types
from tests.support.databases import new_database
from user_svc import handlers as user_handlers
from user_svc.domain import User
from user_svc.models import outbox as user_outbox
from user_svc.uow import UserUnitOfWork
from user_svc.uow import unit_of_work as user_unit_of_work

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def replica_database(migrated_templates: None) -> AsyncIterator[Database]:
    """One order_svc database for all the replica cases; each case uses its own user id."""
    url = await new_database("order_svc")
    database = Database(url, pool_size=2)
    yield database
    await database.close()
    await drop_database(url)


async def add_user(database: Database, name: str = "Ada") -> User:
    user = User.register(
        id=uuid4(), email=f"{uuid4().hex[:8]}@example.com", name=name, credit_limit=100_000
    )
    async with user_unit_of_work(database) as uow:
        assert await uow.users.add(user, password_hash="x")
        await uow.commit()
    return user


async def stored_user(database: Database, user_id: UUID) -> User:
    async with user_unit_of_work(database) as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    return user


def winners_and_losers(results: Sequence[object]) -> tuple[list[object], list[BaseException]]:
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    return winners, losers


async def loaded(uow: UserUnitOfWork, user_id: UUID, *, for_update: bool = False) -> User:
    user = await uow.users.get(user_id, for_update=for_update)
    assert user is not None
    return user


async def test_of_two_writers_from_one_version_exactly_one_wins(
    user_database: Database,
) -> None:
    user = await add_user(user_database)
    first, second = user_unit_of_work(user_database), user_unit_of_work(user_database)

    async def rename(uow: UserUnitOfWork, loaded: User, name: str) -> str:
        loaded.rename(name)
        await uow.users.save(loaded, expected_version=1)
        await uow.commit()
        return name

    async with first, second:
        loaded_by_first = await loaded(first, user.id)
        loaded_by_second = await loaded(second, user.id)
        assert loaded_by_first.version == loaded_by_second.version == 1
        results = await asyncio.gather(
            rename(first, loaded_by_first, "First"),
            rename(second, loaded_by_second, "Second"),
            return_exceptions=True,
        )

    winners, losers = winners_and_losers(results)
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], StaleVersion)
    stored = await stored_user(user_database, user.id)
    assert (stored.name, stored.version) == (winners[0], 2)
    assert await outbox_types(user_database, user_outbox) == ["user.registered", "user.updated"]


async def test_a_writer_blocked_behind_another_matches_no_row_once_that_one_commits(
    user_database: Database,
) -> None:
    user = await add_user(user_database)
    first, second = user_unit_of_work(user_database), user_unit_of_work(user_database)

    async with first, second:
        loaded_by_first = await loaded(first, user.id, for_update=True)
        loaded_by_second = await loaded(second, user.id)
        loaded_by_first.rename("First")
        loaded_by_second.rename("Second")
        await first.users.save(loaded_by_first, expected_version=1)
        await second.users.save(loaded_by_second, expected_version=1)
        blocked = asyncio.create_task(second.commit())

        await wait_until_a_backend_waits_on_a_lock(user_database)
        assert not blocked.done()
        await first.commit()

        with pytest.raises(StaleVersion):
            await blocked

    stored = await stored_user(user_database, user.id)
    assert (stored.name, stored.version) == ("First", 2)


async def test_a_save_from_another_version_than_the_one_loaded_changes_nothing(
    user_database: Database,
) -> None:
    user = await add_user(user_database)
    await user_handlers.rename_user(
        user_handlers.RenameUser(user_id=user.id, name="Grace", expected_version=1),
        user_unit_of_work(user_database),
    )

    async def save_from_version_1() -> None:
        async with user_unit_of_work(user_database) as uow:
            current = await loaded(uow, user.id)
            current.rename("Stale")
            await uow.users.save(current, expected_version=1)
            await uow.commit()

    with pytest.raises(StaleVersion):
        await save_from_version_1()

    stored = await stored_user(user_database, user.id)
    assert (stored.name, stored.version) == ("Grace", 2)


async def test_a_rename_from_a_stale_version_is_refused_without_an_event(
    user_database: Database,
) -> None:
    user = await add_user(user_database)
    rename = user_handlers.RenameUser(user_id=user.id, name="Grace", expected_version=1)
    await user_handlers.rename_user(rename, user_unit_of_work(user_database))

    with pytest.raises(StaleVersion):
        await user_handlers.rename_user(rename, user_unit_of_work(user_database))

    assert await outbox_types(user_database, user_outbox) == ["user.registered", "user.updated"]
    assert (await stored_user(user_database, user.id)).version == 2


async def test_concurrent_renames_from_one_version_have_one_winner_and_one_event(
    user_database: Database,
) -> None:
    user = await add_user(user_database)

    results = await asyncio.gather(
        *(
            user_handlers.rename_user(
                user_handlers.RenameUser(user_id=user.id, name=f"Name {n}", expected_version=1),
                user_unit_of_work(user_database),
            )
            for n in range(10)
        ),
        return_exceptions=True,
    )

    winners, losers = winners_and_losers(results)
    assert len(winners) == 1
    assert all(isinstance(loser, StaleVersion) for loser in losers), losers
    [winner] = winners
    assert isinstance(winner, User)
    stored = await stored_user(user_database, user.id)
    assert (stored.name, stored.version) == (winner.name, 2)
    assert await outbox_types(user_database, user_outbox) == ["user.registered", "user.updated"]


async def test_concurrent_cancellations_of_one_order_have_one_winner_and_one_event(
    order_database: Database,
) -> None:
    user_id = uuid4()
    placed = await order_handlers.place_order(
        order_handlers.PlaceOrder(
            user_id=user_id, items=(Item(sku="SKU-1", quantity=2, unit_price=250),)
        ),
        order_unit_of_work(order_database),
    )
    cancel = order_handlers.CancelOrder(
        order_id=placed.order.id, user_id=user_id, expected_version=1
    )

    results = await asyncio.gather(
        order_handlers.cancel_order(cancel, order_unit_of_work(order_database)),
        order_handlers.cancel_order(cancel, order_unit_of_work(order_database)),
        return_exceptions=True,
    )

    winners, losers = winners_and_losers(results)
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], StaleVersion)
    stored = await OrderQueries(order_database).order(placed.order.id)
    assert stored is not None
    assert (stored.order.status, stored.order.version) == (OrderStatus.CANCELLED, 2)
    assert await outbox_types(order_database, order_outbox) == ["order.created", "order.cancelled"]


@dataclass(frozen=True)
class UserChange:
    """What one `user.*` event carries to the replica."""

    label: str
    version: int
    name: str | None = None
    status: str | None = None


USER_HISTORY = (
    UserChange("registered-v1", 1, name="Ada", status="active"),
    UserChange("updated-v2", 2, name="Ada Lovelace"),
    UserChange("updated-v3", 3, name="Countess Lovelace"),
    UserChange("deactivated-v4", 4, status="deactivated"),
)
IN_ORDER_STATE = ("Countess Lovelace", "deactivated", 4)


async def apply(database: Database, user_id: UUID, change: UserChange) -> None:
    async with order_unit_of_work(database) as uow:
        await uow.customers.apply_if_newer(
            user_id, version=change.version, name=change.name, status=change.status
        )
        await uow.commit()


async def customer(database: Database, user_id: UUID) -> Customer:
    async with order_unit_of_work(database) as uow:
        found = await uow.customers.get(user_id)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "deliveries",
    list(itertools.permutations(USER_HISTORY)),
    ids=lambda deliveries: ",".join(change.label for change in deliveries),
)
async def test_the_customer_replica_converges_whatever_the_delivery_order(
    replica_database: Database, deliveries: tuple[UserChange, ...]
) -> None:
    user_id = uuid4()

    for change in deliveries:
        await apply(replica_database, user_id, change)

    found = await customer(replica_database, user_id)
    assert (found.name, found.status, found.version) == IN_ORDER_STATE


async def test_applying_a_user_event_twice_changes_nothing(replica_database: Database) -> None:
    user_id = uuid4()
    for change in USER_HISTORY:
        await apply(replica_database, user_id, change)

    for change in USER_HISTORY:
        await apply(replica_database, user_id, change)

    found = await customer(replica_database, user_id)
    assert (found.name, found.status, found.version) == IN_ORDER_STATE


async def test_a_duplicate_of_the_latest_rename_changes_nothing(
    replica_database: Database,
) -> None:
    user_id = uuid4()
    registered, updated_v2, *_ = USER_HISTORY
    await apply(replica_database, user_id, registered)
    await apply(replica_database, user_id, updated_v2)
    before = await customer(replica_database, user_id)

    await apply(replica_database, user_id, updated_v2)

    assert await customer(replica_database, user_id) == before
