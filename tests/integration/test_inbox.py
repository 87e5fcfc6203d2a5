"""The inbox against a real PostgreSQL: a (consumer, event id) is claimed once, races included."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import asyncpg
import pytest

from shared.messaging.inbox import claim
from shared.persistence.database import Database
from tests.integration.locks import wait_until_a_backend_waits_on_a_lock
from user_svc.models import inbox

pytestmark = pytest.mark.integration

CONSUMER = "user_svc.order_events"
EVENT_TYPE = "order.created"


async def claim_in(
    connection: asyncpg.Connection, event_id: UUID, consumer: str = CONSUMER
) -> bool:
    return await claim(
        connection, inbox, consumer=consumer, event_id=event_id, event_type=EVENT_TYPE
    )


async def claim_and_commit(database: Database, event_id: UUID, consumer: str = CONSUMER) -> bool:
    async with database.transaction() as connection:
        return await claim_in(connection, event_id, consumer)


async def test_the_first_claim_of_an_event_succeeds(user_database: Database) -> None:
    assert await claim_and_commit(user_database, uuid4()) is True


async def test_a_second_claim_of_the_same_event_by_the_same_consumer_fails(
    user_database: Database,
) -> None:
    event_id = uuid4()
    await claim_and_commit(user_database, event_id)

    assert await claim_and_commit(user_database, event_id) is False


async def test_a_claim_repeated_in_its_own_transaction_fails(user_database: Database) -> None:
    event_id = uuid4()
    async with user_database.transaction() as connection:
        assert await claim_in(connection, event_id) is True

        assert await claim_in(connection, event_id) is False


async def test_each_consumer_claims_the_same_event_independently(user_database: Database) -> None:
    event_id = uuid4()
    await claim_and_commit(user_database, event_id, "user_svc.order_events")

    assert await claim_and_commit(user_database, event_id, "order_svc.user_events") is True
    assert await claim_and_commit(user_database, event_id, "order_svc.user_events") is False


async def test_a_rolled_back_claim_leaves_the_event_unclaimed(user_database: Database) -> None:
    event_id = uuid4()
    async with user_database.connection() as connection:
        transaction = connection.transaction()
        await transaction.start()
        assert await claim_in(connection, event_id) is True
        await transaction.rollback()

    assert await claim_and_commit(user_database, event_id) is True


async def test_of_two_concurrent_claims_exactly_one_succeeds_once_both_commit(
    user_database: Database,
) -> None:
    event_id = uuid4()
    async with user_database.connection() as first, user_database.connection() as second:
        first_transaction, second_transaction = first.transaction(), second.transaction()
        await first_transaction.start()
        await second_transaction.start()
        assert await claim_in(first, event_id) is True
        waiting = asyncio.create_task(claim_in(second, event_id))

        await wait_until_a_backend_waits_on_a_lock(user_database)
        assert not waiting.done()
        await first_transaction.commit()
        claimed_by_second = await waiting
        await second_transaction.commit()

    assert claimed_by_second is False


async def test_a_claim_waiting_on_a_rolled_back_one_succeeds(user_database: Database) -> None:
    event_id = uuid4()
    async with user_database.connection() as first, user_database.connection() as second:
        first_transaction, second_transaction = first.transaction(), second.transaction()
        await first_transaction.start()
        await second_transaction.start()
        assert await claim_in(first, event_id) is True
        waiting = asyncio.create_task(claim_in(second, event_id))

        await wait_until_a_backend_waits_on_a_lock(user_database)
        assert not waiting.done()
        await first_transaction.rollback()
        claimed_by_second = await waiting
        await second_transaction.commit()

    assert claimed_by_second is True
    assert await claim_and_commit(user_database, event_id) is False
