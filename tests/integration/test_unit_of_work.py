"""The unit of work against a real PostgreSQL: rollback by default, state and events together,
events gathered from the aggregates its repositories handed out, one connection per block.

Uses user_svc's unit of work and repositories directly, the way its handlers do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import asyncpg
import pytest

from shared.events import DomainEvent, OrderCreated, OrderItem
from shared.messaging.envelope import CloudEvent, wrap
from shared.messaging.outbox import NOTIFY_CHANNEL
from shared.persistence.database import UNAVAILABLE, Database, dsn
from tests.integration.rows import count_rows, outbox_events
from tests.support.waiting import eventually
from user_svc.domain import User
from user_svc.models import outbox, users
from user_svc.uow import UserUnitOfWork, unit_of_work

pytestmark = pytest.mark.integration

CREDIT_LIMIT = 100_000


class Boom(Exception):
    """Raised inside a unit of work to abandon it."""


@pytest.fixture
async def notifications(user_db: str) -> AsyncIterator[list[str]]:
    """Payloads of the NOTIFYs on the outbox channel, in arrival order."""
    received: list[str] = []
    connection = await asyncpg.connect(dsn(user_db))

    def on_notify(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        received.append(payload)

    await connection.add_listener(NOTIFY_CHANNEL, on_notify)
    yield received
    await connection.remove_listener(NOTIFY_CHANNEL, on_notify)
    await connection.close()


def new_user(email: str | None = None) -> User:
    return User.register(
        id=uuid4(),
        email=email or f"{uuid4().hex[:8]}@example.com",
        name="Ada",
        credit_limit=CREDIT_LIMIT,
    )


async def add_user(database: Database, email: str | None = None) -> User:
    user = new_user(email)
    async with unit_of_work(database) as uow:
        assert await uow.users.add(user, password_hash="x")
        await uow.commit()
    return user


async def rename(uow: UserUnitOfWork, user_id: UUID, name: str) -> None:
    """Load, change and save a user, as a handler does: nothing but the repository is told."""
    user = await uow.users.get(user_id)
    assert user is not None
    loaded_version = user.version
    user.rename(name)
    await uow.users.save(user, expected_version=loaded_version)


async def send_marker(url: str, payload: str) -> None:
    connection = await asyncpg.connect(dsn(url))
    try:
        await connection.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
    finally:
        await connection.close()


async def until_marker_arrives(url: str, notifications: list[str]) -> None:
    """Notifications arrive in commit order: once a marker sent afterwards has arrived, any
    notification of what came before it would have arrived before it."""
    await send_marker(url, "marker")

    async def arrived() -> bool:
        return "marker" in notifications

    await eventually(arrived, timeout=5, what="the marker notification")


async def backend_state(url: str, pid: int) -> str:
    """What a server process is doing, seen from another connection."""
    observer = await asyncpg.connect(dsn(url))
    try:
        state: str = await observer.fetchval(
            "SELECT state FROM pg_stat_activity WHERE pid = $1", pid
        )
    finally:
        await observer.close()
    return state


async def terminate(url: str, pid: int) -> None:
    """End a server process, as a database restart or a failover ends every connection."""
    admin = await asyncpg.connect(dsn(url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()


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


async def test_leaving_without_commit_rolls_back_state_and_events(
    user_database: Database,
) -> None:
    async with unit_of_work(user_database) as uow:
        assert await uow.users.add(new_user(), password_hash="x")

    assert await count_rows(user_database, users) == 0
    assert await outbox_events(user_database, outbox) == []


async def test_an_exception_inside_rolls_back_state_and_events(user_database: Database) -> None:
    async def add_then_fail() -> None:
        async with unit_of_work(user_database) as uow:
            await uow.users.add(new_user(), password_hash="x")
            raise Boom

    with pytest.raises(Boom):
        await add_then_fail()

    assert await count_rows(user_database, users) == 0
    assert await outbox_events(user_database, outbox) == []


async def test_rolling_back_a_change_leaves_the_previous_state(user_database: Database) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        await rename(uow, user.id, "Grace")

    async with unit_of_work(user_database) as uow:
        stored = await uow.users.get(user.id)
    assert stored is not None
    assert (stored.name, stored.version) == ("Ada", 1)
    assert [e.type for e in await outbox_events(user_database, outbox)] == ["user.registered"]


async def test_commit_writes_the_state_and_its_events_together(user_database: Database) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        stored = await uow.users.get(user.id)
    [event] = await outbox_events(user_database, outbox)

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


async def test_an_aggregate_loaded_changed_and_saved_has_its_event_written_by_commit(
    user_database: Database,
) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        await rename(uow, user.id, "Grace")
        await uow.commit()

    registered, updated = await outbox_events(user_database, outbox)
    assert (registered.type, updated.type) == ("user.registered", "user.updated")
    assert updated.data == {"user_id": str(user.id), "name": "Grace"}


async def test_the_event_of_a_change_carries_the_new_aggregate_version(
    user_database: Database,
) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        await rename(uow, user.id, "Grace")
        await uow.commit()

    registered, updated = await outbox_events(user_database, outbox)
    assert (registered.aggregateversion, updated.aggregateversion) == (1, 2)


async def test_an_aggregate_whose_insert_lost_has_no_events_written(
    user_database: Database,
) -> None:
    taken = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        assert not await uow.users.add(new_user(taken.email), password_hash="x")
        await uow.commit()

    [registered] = await outbox_events(user_database, outbox)
    assert registered.subject == str(taken.id)


async def test_commit_returns_the_envelopes_it_wrote(user_database: Database) -> None:
    async with unit_of_work(user_database) as uow:
        await uow.users.add(new_user(), password_hash="x")
        written = await uow.commit()

    assert [e.id for e in written] == [e.id for e in await outbox_events(user_database, outbox)]


async def test_events_raised_while_handling_a_cause_are_linked_to_it(
    user_database: Database,
) -> None:
    user = await add_user(user_database)
    cause = order_created_by_another_service()

    async with unit_of_work(user_database) as uow:
        with uow.caused_by(cause):
            await rename(uow, user.id, "Grace")
        await uow.commit()

    updated = (await outbox_events(user_database, outbox))[-1]
    assert updated.causationid == str(cause.id)
    assert updated.correlationid == cause.correlationid
    assert cause.traceparent is not None
    assert updated.traceparent is not None
    assert updated.traceparent.split("-")[1] == cause.traceparent.split("-")[1]


async def test_each_message_of_a_batch_causes_the_events_raised_while_it_is_handled(
    user_database: Database,
) -> None:
    first_user, second_user = await add_user(user_database), await add_user(user_database)
    first_cause, second_cause = (
        order_created_by_another_service(),
        order_created_by_another_service(),
    )

    async with unit_of_work(user_database) as uow:
        with uow.caused_by(first_cause):
            await rename(uow, first_user.id, "Grace")
        with uow.caused_by(second_cause):
            await rename(uow, second_user.id, "Edsger")
        await uow.commit()

    *_, first, second = await outbox_events(user_database, outbox)
    assert (first.subject, first.causationid) == (str(first_user.id), str(first_cause.id))
    assert (second.subject, second.causationid) == (str(second_user.id), str(second_cause.id))


async def test_events_raised_before_a_cause_keep_the_cause_they_were_raised_under(
    user_database: Database,
) -> None:
    first_user, second_user = await add_user(user_database), await add_user(user_database)
    cause = order_created_by_another_service()

    async with unit_of_work(user_database) as uow:
        await rename(uow, first_user.id, "Grace")
        with uow.caused_by(cause):
            await rename(uow, second_user.id, "Edsger")
        await uow.commit()

    *_, before, inside = await outbox_events(user_database, outbox)
    assert (before.subject, before.causationid) == (str(first_user.id), None)
    assert (inside.subject, inside.causationid) == (str(second_user.id), str(cause.id))


async def test_events_without_a_cause_have_no_causation(user_database: Database) -> None:
    await add_user(user_database)

    [registered] = await outbox_events(user_database, outbox)

    assert registered.causationid is None
    assert registered.correlationid is None


async def test_a_committed_unit_of_work_with_events_notifies_the_relay(
    user_database: Database, notifications: list[str]
) -> None:
    await add_user(user_database)

    async def notified() -> bool:
        return len(notifications) == 1

    await eventually(notified, timeout=5, what="a NOTIFY on the outbox channel")


async def test_a_rolled_back_unit_of_work_notifies_nobody(
    user_database: Database, user_db: str, notifications: list[str]
) -> None:
    async with unit_of_work(user_database) as uow:
        await uow.users.add(new_user(), password_hash="x")

    await until_marker_arrives(user_db, notifications)
    assert notifications == ["marker"]


async def test_a_commit_without_events_notifies_nobody(
    user_database: Database, user_db: str, notifications: list[str]
) -> None:
    async with unit_of_work(user_database) as uow:
        await uow.connection.execute("SELECT 1")
        written = await uow.commit()

    await until_marker_arrives(user_db, notifications)
    assert written == []
    assert notifications == ["marker"]


async def test_a_read_only_unit_of_work_leaves_no_transaction_open(
    user_database: Database, user_db: str
) -> None:
    user = await add_user(user_database)

    async with unit_of_work(user_database) as uow:
        await uow.users.get(user.id)
        pid = uow.connection.get_server_pid()

    assert await backend_state(user_db, pid) == "idle"


async def test_a_connection_broken_under_a_unit_of_work_is_discarded_and_the_next_one_works(
    user_db: str,
) -> None:
    database = Database(user_db, pool_size=1)
    try:
        user = await add_user(database)

        async def read_on_a_broken_connection() -> None:
            async with unit_of_work(database) as uow:
                await terminate(user_db, uow.connection.get_server_pid())
                await uow.users.get(user.id)

        with pytest.raises(UNAVAILABLE):
            await read_on_a_broken_connection()

        async with unit_of_work(database) as uow:
            assert await uow.users.get(user.id) is not None
    finally:
        await database.close()


async def test_using_the_unit_of_work_outside_async_with_is_an_error(
    user_database: Database,
) -> None:
    uow = unit_of_work(user_database)

    with pytest.raises(RuntimeError, match="outside"):
        _ = uow.connection
