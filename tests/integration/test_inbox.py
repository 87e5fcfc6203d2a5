"""The inbox against a real PostgreSQL: a (consumer, event id) is claimed once, races included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import create_engine
from shared.inbox import claim
from tests.integration.locks import wait_until_a_backend_waits_on_a_lock
from user_svc.models import inbox

pytestmark = pytest.mark.integration

CONSUMER = "user_svc.order_events"
EVENT_TYPE = "order.created"


@pytest.fixture
async def engine(user_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(user_db)
    yield engine
    await engine.dispose()


async def claim_in(connection: AsyncConnection, event_id: UUID, consumer: str = CONSUMER) -> bool:
    return await claim(
        connection, inbox, consumer=consumer, event_id=event_id, event_type=EVENT_TYPE
    )


async def claim_and_commit(engine: AsyncEngine, event_id: UUID, consumer: str = CONSUMER) -> bool:
    async with engine.connect() as connection, connection.begin():
        return await claim_in(connection, event_id, consumer)


async def test_the_first_claim_of_an_event_succeeds(engine: AsyncEngine) -> None:
    assert await claim_and_commit(engine, uuid4()) is True


async def test_a_second_claim_of_the_same_event_by_the_same_consumer_fails(
    engine: AsyncEngine,
) -> None:
    event_id = uuid4()
    await claim_and_commit(engine, event_id)

    assert await claim_and_commit(engine, event_id) is False


async def test_a_claim_repeated_in_its_own_transaction_fails(engine: AsyncEngine) -> None:
    event_id = uuid4()
    async with engine.connect() as connection, connection.begin():
        assert await claim_in(connection, event_id) is True

        assert await claim_in(connection, event_id) is False


async def test_each_consumer_claims_the_same_event_independently(engine: AsyncEngine) -> None:
    event_id = uuid4()
    await claim_and_commit(engine, event_id, "user_svc.order_events")

    assert await claim_and_commit(engine, event_id, "order_svc.user_events") is True
    assert await claim_and_commit(engine, event_id, "order_svc.user_events") is False


async def test_a_rolled_back_claim_leaves_the_event_unclaimed(engine: AsyncEngine) -> None:
    event_id = uuid4()
    async with engine.connect() as connection:
        await connection.begin()
        assert await claim_in(connection, event_id) is True
        await connection.rollback()

    assert await claim_and_commit(engine, event_id) is True


async def test_of_two_concurrent_claims_exactly_one_succeeds_once_both_commit(
    engine: AsyncEngine,
) -> None:
    event_id = uuid4()
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await second.begin()
        assert await claim_in(first, event_id) is True
        waiting = asyncio.create_task(claim_in(second, event_id))

        await wait_until_a_backend_waits_on_a_lock(engine)
        assert not waiting.done()
        await first.commit()
        claimed_by_second = await waiting
        await second.commit()

    assert claimed_by_second is False


async def test_a_claim_waiting_on_a_rolled_back_one_succeeds(engine: AsyncEngine) -> None:
    event_id = uuid4()
    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await second.begin()
        assert await claim_in(first, event_id) is True
        waiting = asyncio.create_task(claim_in(second, event_id))

        await wait_until_a_backend_waits_on_a_lock(engine)
        assert not waiting.done()
        await first.rollback()
        claimed_by_second = await waiting
        await second.commit()

    assert claimed_by_second is True
    assert await claim_and_commit(engine, event_id) is False
