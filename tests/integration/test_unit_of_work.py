"""The unit of work against a real PostgreSQL: rollback by default, state and events together.

Uses user_svc's unit of work and repositories directly, the way its handlers do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import asyncpg_dsn, create_engine
from shared.envelope import CloudEvent, decode, wrap
from shared.events import DomainEvent, OrderCreated, OrderItem
from shared.outbox import NOTIFY_CHANNEL
from user_svc.domain import User
from user_svc.models import outbox, users
from user_svc.uow import unit_of_work

pytestmark = pytest.mark.integration

CREDIT_LIMIT = 100_000


class Boom(Exception):
    """Raised inside a unit of work to abandon it."""


@pytest.fixture
async def engine(user_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(user_db)
    yield engine
    await engine.dispose()


@pytest.fixture
async def notifications(user_db: str) -> AsyncIterator[list[str]]:
    """Payloads of the NOTIFYs on the outbox channel, in arrival order."""
    received: list[str] = []
    connection = await asyncpg.connect(asyncpg_dsn(user_db))

    def on_notify(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        received.append(payload)

    await connection.add_listener(NOTIFY_CHANNEL, on_notify)
    yield received
    await connection.remove_listener(NOTIFY_CHANNEL, on_notify)
    await connection.close()


async def eventually(condition: Callable[[], bool], *, what: str, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


def new_user(email: str | None = None) -> User:
    return User.register(
        id=uuid4(),
        email=email or f"{uuid4().hex[:8]}@example.com",
        name="Ada",
        credit_limit=CREDIT_LIMIT,
    )


async def add_user(engine: AsyncEngine) -> User:
    user = new_user()
    async with unit_of_work(engine) as uow:
        assert await uow.users.add(user, password_hash="x")
        uow.collect(user)
        await uow.commit()
    return user


async def user_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(users))).scalar_one()


async def outbox_events(engine: AsyncEngine) -> list[CloudEvent]:
    async with engine.connect() as connection:
        bodies = (await connection.execute(select(outbox.c.body).order_by(outbox.c.seq))).scalars()
        return [decode(body)[0] for body in bodies]


async def send_marker(url: str, payload: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
    finally:
        await connection.close()


def order_created_by_another_service() -> CloudEvent:
    order_id = uuid4()
    return wrap(
        DomainEvent(
            data=OrderCreated(
                order_id=order_id,
                user_id=uuid4(),
                items=[OrderItem(sku="SKU-1", quantity=1, unit_price=500)],
                total=500,
            ),
            subject=order_id,
            aggregate_version=1,
            correlation_id=order_id,
        ),
        source="/order_svc",
    )


async def test_leaving_without_commit_rolls_back_state_and_events(engine: AsyncEngine) -> None:
    user = new_user()
    async with unit_of_work(engine) as uow:
        assert await uow.users.add(user, password_hash="x")
        uow.collect(user)

    assert await user_count(engine) == 0
    assert await outbox_events(engine) == []


async def test_an_exception_inside_rolls_back_state_and_events(engine: AsyncEngine) -> None:
    async def add_then_fail() -> None:
        user = new_user()
        async with unit_of_work(engine) as uow:
            await uow.users.add(user, password_hash="x")
            uow.collect(user)
            raise Boom

    with pytest.raises(Boom):
        await add_then_fail()

    assert await user_count(engine) == 0
    assert await outbox_events(engine) == []


async def test_rolling_back_a_change_leaves_the_previous_state(engine: AsyncEngine) -> None:
    user = await add_user(engine)

    async with unit_of_work(engine) as uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.rename("Grace")
        await uow.users.save(loaded, expected_version=1)
        uow.collect(loaded)

    async with unit_of_work(engine) as uow:
        stored = await uow.users.get(user.id)
    assert stored is not None
    assert (stored.name, stored.version) == ("Ada", 1)
    assert [e.type for e in await outbox_events(engine)] == ["user.registered"]


async def test_commit_writes_the_state_and_its_events_together(engine: AsyncEngine) -> None:
    user = await add_user(engine)

    async with unit_of_work(engine) as uow:
        stored = await uow.users.get(user.id)
    [event] = await outbox_events(engine)

    assert stored is not None
    assert stored.email == user.email
    assert event.type == "user.registered"
    assert event.source == "/user_svc"
    assert event.subject == str(user.id)
    assert event.aggregateversion == 1
    assert event.data == {
        "user_id": str(user.id),
        "email": user.email,
        "name": "Ada",
        "credit_limit": CREDIT_LIMIT,
    }


async def test_the_event_of_a_change_carries_the_new_aggregate_version(
    engine: AsyncEngine,
) -> None:
    user = await add_user(engine)

    async with unit_of_work(engine) as uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.rename("Grace")
        await uow.users.save(loaded, expected_version=1)
        uow.collect(loaded)
        await uow.commit()

    registered, updated = await outbox_events(engine)
    assert (registered.type, registered.aggregateversion) == ("user.registered", 1)
    assert (updated.type, updated.aggregateversion) == ("user.updated", 2)
    assert updated.data == {"user_id": str(user.id), "name": "Grace"}


async def test_commit_returns_the_envelopes_it_wrote(engine: AsyncEngine) -> None:
    user = new_user()
    async with unit_of_work(engine) as uow:
        await uow.users.add(user, password_hash="x")
        uow.collect(user)
        written = await uow.commit()

    assert [e.id for e in written] == [e.id for e in await outbox_events(engine)]


async def test_events_raised_while_handling_a_cause_are_linked_to_it(engine: AsyncEngine) -> None:
    user = await add_user(engine)
    cause = order_created_by_another_service()

    async with unit_of_work(engine, cause=cause) as uow:
        loaded = await uow.users.get(user.id)
        assert loaded is not None
        loaded.rename("Grace")
        await uow.users.save(loaded, expected_version=1)
        uow.collect(loaded)
        await uow.commit()

    updated = (await outbox_events(engine))[-1]
    assert updated.causationid == str(cause.id)
    assert updated.correlationid == cause.correlationid
    assert cause.traceparent is not None
    assert updated.traceparent is not None
    assert updated.traceparent.split("-")[1] == cause.traceparent.split("-")[1]


async def test_events_without_a_cause_have_no_causation(engine: AsyncEngine) -> None:
    await add_user(engine)

    [registered] = await outbox_events(engine)

    assert registered.causationid is None
    assert registered.correlationid is None


async def test_a_committed_unit_of_work_with_events_notifies_the_relay(
    engine: AsyncEngine, notifications: list[str]
) -> None:
    await add_user(engine)

    await eventually(lambda: len(notifications) == 1, what="a NOTIFY on the outbox channel")


async def test_a_rolled_back_unit_of_work_notifies_nobody(
    engine: AsyncEngine, user_db: str, notifications: list[str]
) -> None:
    user = new_user()
    async with unit_of_work(engine) as uow:
        await uow.users.add(user, password_hash="x")
        uow.collect(user)

    # Notifications arrive in commit order: once a marker sent afterwards has arrived, any
    # notification of the rolled-back unit of work would have arrived before it.
    await send_marker(user_db, "marker")
    await eventually(lambda: "marker" in notifications, what="the marker notification")
    assert notifications == ["marker"]


async def test_a_commit_without_events_notifies_nobody(
    engine: AsyncEngine, user_db: str, notifications: list[str]
) -> None:
    async with unit_of_work(engine) as uow:
        await uow.connection.execute(select(1))
        written = await uow.commit()

    await send_marker(user_db, "marker")
    await eventually(lambda: "marker" in notifications, what="the marker notification")
    assert written == []
    assert notifications == ["marker"]


async def test_using_the_unit_of_work_outside_async_with_is_an_error(
    engine: AsyncEngine,
) -> None:
    uow = unit_of_work(engine)

    with pytest.raises(RuntimeError, match="outside"):
        _ = uow.connection
