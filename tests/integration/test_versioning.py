"""Versioned rows against a real PostgreSQL: one winner per race, replicas converge.

`save_versioned` (through the services' repositories and handlers): of writers racing from the
same version, the row lock makes them go one after the other and `WHERE version = :expected`
lets exactly one match. `apply_if_newer` (through order_svc's customers replica): any order of
delivery, with or without duplicates, ends in the in-order state.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from order_svc import handlers as order_handlers
from order_svc.domain import Customer, Item, OrderStatus
from order_svc.models import outbox as order_outbox
from order_svc.queries import OrderQueries
from order_svc.uow import unit_of_work as order_unit_of_work
from shared.db import create_engine, drop_database, ensure_database, migrate
from shared.errors import StaleVersion
from tests.conftest import POSTGRES
from tests.integration.locks import wait_until_a_backend_waits_on_a_lock
from tests.support.names import unique_suffix
from user_svc import handlers as user_handlers
from user_svc.domain import User
from user_svc.models import outbox as user_outbox
from user_svc.uow import UserUnitOfWork
from user_svc.uow import unit_of_work as user_unit_of_work

pytestmark = pytest.mark.integration


@pytest.fixture
async def user_engine(user_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(user_db)
    yield engine
    await engine.dispose()


@pytest.fixture
async def order_engine(order_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(order_db)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def replica_engine() -> AsyncIterator[AsyncEngine]:
    """One order_svc database for all the replica cases; each case uses its own user id."""
    url = f"{POSTGRES}/test_order_svc_{unique_suffix()}"
    await ensure_database(url)
    await migrate("order_svc", url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()
    await drop_database(url)


async def add_user(engine: AsyncEngine, name: str = "Ada") -> User:
    user = User.register(
        id=uuid4(), email=f"{uuid4().hex[:8]}@example.com", name=name, credit_limit=100_000
    )
    async with user_unit_of_work(engine) as uow:
        assert await uow.users.add(user, password_hash="x")
        uow.collect(user)
        await uow.commit()
    return user


async def stored_user(engine: AsyncEngine, user_id: UUID) -> User:
    async with user_unit_of_work(engine) as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    return user


async def outbox_types(engine: AsyncEngine, table: Table) -> list[str]:
    async with engine.connect() as connection:
        return list(
            (await connection.execute(select(table.c.type).order_by(table.c.seq))).scalars()
        )


def winners_and_losers(results: Sequence[object]) -> tuple[list[object], list[BaseException]]:
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    return winners, losers


async def test_of_two_writers_from_one_version_exactly_one_wins(user_engine: AsyncEngine) -> None:
    user = await add_user(user_engine)
    first, second = user_unit_of_work(user_engine), user_unit_of_work(user_engine)

    async def rename(uow: UserUnitOfWork, loaded: User, name: str) -> str:
        loaded.rename(name)
        await uow.users.save(loaded, expected_version=1)
        await uow.commit()
        return name

    async with first, second:
        loaded_by_first = await first.users.get(user.id)
        loaded_by_second = await second.users.get(user.id)
        assert loaded_by_first is not None
        assert loaded_by_second is not None
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
    stored = await stored_user(user_engine, user.id)
    assert (stored.name, stored.version) == (winners[0], 2)


async def test_a_writer_blocked_behind_another_matches_no_row_once_that_one_commits(
    user_engine: AsyncEngine,
) -> None:
    user = await add_user(user_engine)
    first, second = user_unit_of_work(user_engine), user_unit_of_work(user_engine)

    async with first, second:
        loaded_by_first = await first.users.get(user.id)
        loaded_by_second = await second.users.get(user.id)
        assert loaded_by_first is not None
        assert loaded_by_second is not None
        loaded_by_first.rename("First")
        loaded_by_second.rename("Second")
        await first.users.save(loaded_by_first, expected_version=1)
        blocked = asyncio.create_task(second.users.save(loaded_by_second, expected_version=1))

        await wait_until_a_backend_waits_on_a_lock(user_engine)
        assert not blocked.done()
        await first.commit()

        with pytest.raises(StaleVersion):
            await blocked

    stored = await stored_user(user_engine, user.id)
    assert (stored.name, stored.version) == ("First", 2)


async def test_a_save_with_a_stale_version_changes_nothing(user_engine: AsyncEngine) -> None:
    user = await add_user(user_engine)
    await user_handlers.rename_user(
        user_handlers.RenameUser(user_id=user.id, name="Grace", expected_version=1),
        user_unit_of_work(user_engine),
    )
    stale = User(
        id=user.id, email=user.email, name="Stale", credit_limit=user.credit_limit, version=3
    )

    async def save_from_version_1() -> None:
        async with user_unit_of_work(user_engine) as uow:
            await uow.users.save(stale, expected_version=1)
            await uow.commit()

    with pytest.raises(StaleVersion):
        await save_from_version_1()

    stored = await stored_user(user_engine, user.id)
    assert (stored.name, stored.version) == ("Grace", 2)


async def test_a_rename_from_a_stale_version_is_refused_without_an_event(
    user_engine: AsyncEngine,
) -> None:
    user = await add_user(user_engine)
    rename = user_handlers.RenameUser(user_id=user.id, name="Grace", expected_version=1)
    await user_handlers.rename_user(rename, user_unit_of_work(user_engine))

    with pytest.raises(StaleVersion):
        await user_handlers.rename_user(rename, user_unit_of_work(user_engine))

    assert await outbox_types(user_engine, user_outbox) == ["user.registered", "user.updated"]
    assert (await stored_user(user_engine, user.id)).version == 2


async def test_concurrent_renames_from_one_version_have_one_winner_and_one_event(
    user_engine: AsyncEngine,
) -> None:
    user = await add_user(user_engine)

    results = await asyncio.gather(
        *(
            user_handlers.rename_user(
                user_handlers.RenameUser(user_id=user.id, name=f"Name {n}", expected_version=1),
                user_unit_of_work(user_engine),
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
    stored = await stored_user(user_engine, user.id)
    assert (stored.name, stored.version) == (winner.name, 2)
    assert await outbox_types(user_engine, user_outbox) == ["user.registered", "user.updated"]


async def test_concurrent_cancellations_of_one_order_have_one_winner_and_one_event(
    order_engine: AsyncEngine,
) -> None:
    user_id = uuid4()
    placed = await order_handlers.place_order(
        order_handlers.PlaceOrder(
            user_id=user_id, items=(Item(sku="SKU-1", quantity=2, unit_price=250),)
        ),
        order_unit_of_work(order_engine),
    )
    cancel = order_handlers.CancelOrder(
        order_id=placed.order.id, user_id=user_id, expected_version=1
    )

    results = await asyncio.gather(
        order_handlers.cancel_order(cancel, order_unit_of_work(order_engine)),
        order_handlers.cancel_order(cancel, order_unit_of_work(order_engine)),
        return_exceptions=True,
    )

    winners, losers = winners_and_losers(results)
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], StaleVersion)
    stored = await OrderQueries(order_engine).order(placed.order.id)
    assert stored is not None
    assert (stored.order.status, stored.order.version) == (OrderStatus.CANCELLED, 2)
    assert await outbox_types(order_engine, order_outbox) == ["order.created", "order.cancelled"]


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


async def apply(engine: AsyncEngine, user_id: UUID, change: UserChange) -> None:
    async with order_unit_of_work(engine) as uow:
        await uow.customers.apply_if_newer(
            user_id, version=change.version, name=change.name, status=change.status
        )
        await uow.commit()


async def customer(engine: AsyncEngine, user_id: UUID) -> Customer:
    async with order_unit_of_work(engine) as uow:
        found = await uow.customers.get(user_id)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "deliveries",
    list(itertools.permutations(USER_HISTORY)),
    ids=lambda deliveries: ",".join(change.label for change in deliveries),
)
async def test_the_customer_replica_converges_whatever_the_delivery_order(
    replica_engine: AsyncEngine, deliveries: tuple[UserChange, ...]
) -> None:
    user_id = uuid4()

    for change in deliveries:
        await apply(replica_engine, user_id, change)

    found = await customer(replica_engine, user_id)
    assert (found.name, found.status, found.version) == IN_ORDER_STATE


async def test_applying_a_user_event_twice_changes_nothing(replica_engine: AsyncEngine) -> None:
    user_id = uuid4()
    for change in USER_HISTORY:
        await apply(replica_engine, user_id, change)

    for change in USER_HISTORY:
        await apply(replica_engine, user_id, change)

    found = await customer(replica_engine, user_id)
    assert (found.name, found.status, found.version) == IN_ORDER_STATE


async def test_a_duplicate_of_the_latest_rename_changes_nothing(
    replica_engine: AsyncEngine,
) -> None:
    user_id = uuid4()
    registered, updated_v2, *_ = USER_HISTORY
    await apply(replica_engine, user_id, registered)
    await apply(replica_engine, user_id, updated_v2)
    before = await customer(replica_engine, user_id)

    await apply(replica_engine, user_id, updated_v2)

    assert await customer(replica_engine, user_id) == before
