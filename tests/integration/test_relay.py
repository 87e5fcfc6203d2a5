"""The outbox relay against real PostgreSQL and RabbitMQ (user_svc's tables, a fresh vhost).

An observer queue bound to `events` with `#` sees everything the relay publishes. Publisher
confirms are only given once a message is enqueued, so after `publish_pending()` returns the
observer queue already holds every message it published: tests drain it with `basic.get`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence

import aio_pika
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from sqlalchemy import bindparam, func, select

from broker.topology import TOPOLOGY, declare
from shared.events import DomainEvent, UserUpdated
from shared.messaging import outbox
from shared.messaging.envelope import CONTENT_TYPE, CloudEvent, decode, wrap
from shared.messaging.relay import OutboxRelay
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from shared.persistence.statements import Statement
from tests.support.waiting import eventually
from user_svc import models
from user_svc.domain import User
from user_svc.uow import unit_of_work

pytestmark = pytest.mark.integration

RelayFactory = Callable[..., OutboxRelay]

LISTENERS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND query ILIKE 'LISTEN %outbox%'"
)
_PUBLISHED_AT = Statement(
    select(models.outbox.c.published_at).where(models.outbox.c.id == bindparam("id"))
)
_UNPUBLISHED = Statement(
    select(func.count()).select_from(models.outbox).where(models.outbox.c.published_at.is_(None))
)


class Observer:
    """A queue bound to `events` with `#`: a copy of everything published, in publication order."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue
        self.received: list[AbstractIncomingMessage] = []

    async def drain(self) -> list[AbstractIncomingMessage]:
        """Take what the queue holds now; return everything received so far."""
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            self.received.append(message)
        return self.received

    async def ids(self) -> list[str]:
        return [str(message.message_id) for message in await self.drain()]


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await declare(await connection.channel(), TOPOLOGY)
        yield connection


@pytest.fixture
async def channel(amqp: AbstractRobustConnection) -> AbstractChannel:
    return await amqp.channel()


@pytest.fixture
async def observer(channel: AbstractChannel) -> Observer:
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(TOPOLOGY.exchange.name, routing_key="#")
    return Observer(queue)


@pytest.fixture
def relay_for(user_database: Database, amqp: AbstractRobustConnection) -> RelayFactory:
    def build(*, batch_size: int = 100, poll_seconds: float = 60.0) -> OutboxRelay:
        return OutboxRelay(
            database=user_database,
            outbox=models.outbox,
            amqp=amqp,
            exchange=TOPOLOGY.exchange.name,
            metrics=Metrics(),
            batch_size=batch_size,
            poll_seconds=poll_seconds,
        )

    return build


@pytest.fixture
def relay(relay_for: RelayFactory) -> OutboxRelay:
    return relay_for()


def new_user() -> User:
    suffix = uuid.uuid4().hex[:10]
    return User.register(
        id=uuid.uuid4(), email=f"{suffix}@example.com", name=f"User {suffix}", credit_limit=1_000
    )


async def register(database: Database) -> list[CloudEvent]:
    """Register a user through the unit of work; return the envelopes committed to the outbox."""
    async with unit_of_work(database) as uow:
        assert await uow.users.add(new_user(), password_hash="not-a-real-hash")
        return await uow.commit()


def renamed(index: int) -> DomainEvent:
    user_id = uuid.uuid4()
    return DomainEvent(
        data=UserUpdated(user_id=user_id, name=f"Name {index}"),
        subject=user_id,
        aggregate_version=2,
    )


async def commit_events(database: Database, count: int) -> list[CloudEvent]:
    """Commit `count` events in one transaction, as a unit of work's commit appends them."""
    envelopes = [wrap(renamed(i), source="/user_svc") for i in range(count)]
    async with database.transaction() as connection:
        await outbox.append(connection, models.outbox, envelopes)
    return envelopes


def ids_of(envelopes: Sequence[CloudEvent]) -> list[str]:
    return [str(envelope.id) for envelope in envelopes]


async def published_at(database: Database, event_id: uuid.UUID) -> object:
    async with database.connection() as connection:
        return await _PUBLISHED_AT.fetchval(connection, id=event_id)


async def test_events_of_a_rolled_back_transaction_never_reach_the_broker(
    user_database: Database, relay: OutboxRelay, observer: Observer
) -> None:
    async with unit_of_work(user_database) as uow:
        user = new_user()
        await uow.users.add(user, password_hash="not-a-real-hash")
        # What commit() writes, minus the COMMIT: the rows exist, but only in this transaction.
        rolled_back = [wrap(event, source="/user_svc") for event in user.events]
        await outbox.append(uow.connection, models.outbox, rolled_back)
        assert await relay.publish_pending() == 0
    committed = await register(user_database)

    assert await relay.publish_pending() == 1

    assert await observer.ids() == ids_of(committed)


async def test_a_published_message_carries_the_cloud_event_as_the_contract_says(
    user_database: Database, relay: OutboxRelay, observer: Observer
) -> None:
    [envelope] = await register(user_database)

    await relay.publish_pending()

    [message] = await observer.drain()
    assert message.message_id == str(envelope.id)
    assert message.type == envelope.type == "user.registered"
    assert message.routing_key == envelope.type
    assert message.exchange == TOPOLOGY.exchange.name
    assert message.content_type == CONTENT_TYPE
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    decoded, data = decode(message.body)
    assert decoded == envelope
    assert data.model_dump(mode="json") == envelope.data


async def test_a_row_is_marked_published_once_the_broker_confirmed_it(
    user_database: Database, relay: OutboxRelay, observer: Observer
) -> None:
    [envelope] = await register(user_database)
    assert await published_at(user_database, envelope.id) is None

    assert await relay.publish_pending() == 1

    assert await published_at(user_database, envelope.id) is not None
    assert await observer.ids() == [str(envelope.id)]


async def test_a_row_the_broker_refused_stays_unpublished_until_a_later_confirm(
    user_database: Database, relay: OutboxRelay, observer: Observer, channel: AbstractChannel
) -> None:
    # A full queue with `reject-publish` makes the broker nack every message routed to it.
    full = await channel.declare_queue(
        exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    await full.bind(TOPOLOGY.exchange.name, routing_key="#")
    [envelope] = await register(user_database)

    with pytest.raises(RuntimeError, match="not confirmed"):
        await relay.publish_pending()
    assert await published_at(user_database, envelope.id) is None

    await full.delete(if_unused=False, if_empty=False)
    assert await relay.publish_pending() == 1
    assert await published_at(user_database, envelope.id) is not None


async def test_publishing_an_empty_outbox_publishes_nothing(
    relay: OutboxRelay, observer: Observer
) -> None:
    assert await relay.publish_pending() == 0

    assert await observer.drain() == []


async def test_events_are_published_in_outbox_order(
    user_database: Database, relay_for: RelayFactory, observer: Observer
) -> None:
    committed = [envelope for _ in range(50) for envelope in await commit_events(user_database, 1)]

    assert await relay_for(batch_size=7).publish_pending() == 50

    assert await observer.ids() == ids_of(committed)


async def test_two_relays_draining_one_outbox_publish_every_row_exactly_once(
    user_database: Database, relay_for: RelayFactory, observer: Observer
) -> None:
    committed = await commit_events(user_database, 500)
    first, second = relay_for(batch_size=10), relay_for(batch_size=10)

    counts = await asyncio.gather(first.publish_pending(), second.publish_pending())

    assert sum(counts) == 500
    published = Counter(await observer.ids())
    assert set(published) == set(ids_of(committed))
    assert set(published.values()) == {1}
    async with user_database.connection() as connection:
        assert await _UNPUBLISHED.fetchval(connection) == 0


async def test_a_running_relay_wakes_on_notify_long_before_its_next_poll(
    user_database: Database, relay_for: RelayFactory, observer: Observer
) -> None:
    """With a 60 s poll, only the commit's NOTIFY can get an event out within seconds.

    The relay also wakes once when its listener connects (to catch up on anything committed
    while it was not listening), and the first event may ride on that wake-up; the second one,
    committed after the first was published, cannot.
    """
    task = asyncio.create_task(relay_for(poll_seconds=60).run())
    try:

        async def listening() -> bool:
            async with user_database.connection() as connection:
                return bool(await connection.fetchval(LISTENERS))

        await eventually(listening, timeout=10, what="the relay to LISTEN")
        for _ in range(2):
            [envelope] = await register(user_database)

            async def published(event_id: str = str(envelope.id)) -> bool:
                return event_id in await observer.ids()

            await eventually(published, timeout=5, what="the event to be published")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
