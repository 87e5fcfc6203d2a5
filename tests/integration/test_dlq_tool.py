"""The DLQ tool (`python -m broker dlq`, `broker/dlq.py`) on a real RabbitMQ, a vhost per test.

Dead letters are made the two ways they arise in production: published to the DLQ with the headers
our consumer sets (`shared/messaging/consumer.py`), or dead-lettered by RabbitMQ itself from a
quorum queue whose delivery limit is exceeded (a queue of the test with a limit of 1, so that it
takes two deliveries rather than twenty-one).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from broker import dlq
from broker.topology import INVENTORY_SVC_QUEUE, ORDER_SVC_QUEUE, USER_SVC_QUEUE, declare
from tests.support.events import cloud_event
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

DLQ = ORDER_SVC_QUEUE.dead_letter_queue
CONTENT_TYPE = "application/cloudevents+json"


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await declare(await connection.channel())
        yield connection


@pytest.fixture
async def channel(connection: AbstractConnection) -> AsyncIterator[AbstractChannel]:
    async with connection.channel(publisher_confirms=True) as channel:
        yield channel


def an_event() -> tuple[str, bytes]:
    event_id = uuid.uuid4()
    user_id = uuid.uuid4()
    body = cloud_event(
        "user.updated",
        {"user_id": str(user_id), "name": "Ada"},
        subject=user_id,
        version=2,
        event_id=event_id,
    )
    return str(event_id), body


async def dead_letter_as_the_consumer_does(
    channel: AbstractChannel,
    event_id: str,
    body: bytes,
    *,
    original_queue: str = ORDER_SVC_QUEUE.name,
) -> None:
    """What `EventConsumer` publishes when a handler failed `max_attempts` times."""
    headers: dict[str, Any] = {
        "x-attempt": 5,
        "x-last-error": "RuntimeError: database unavailable",
        "x-dead-letter-reason": "RuntimeError: database unavailable",
        "x-exception-type": "RuntimeError",
        "x-attempts": 5,
        "x-original-exchange": "events",
        "x-original-routing-key": "user.updated",
        "x-original-queue": original_queue,
    }
    await channel.default_exchange.publish(
        aio_pika.Message(
            body,
            headers=headers,
            message_id=event_id,
            type="user.updated",
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key=DLQ,
    )


async def dead_letter_by_the_delivery_limit(
    channel: AbstractChannel, event_id: str, body: bytes
) -> str:
    """Have RabbitMQ dead-letter a message into `DLQ` from a queue of its own; return that queue."""
    flaky = await channel.declare_queue(
        "flaky.events",
        durable=True,
        arguments={**ORDER_SVC_QUEUE.arguments, "x-delivery-limit": 1},
    )
    await channel.default_exchange.publish(
        aio_pika.Message(body, message_id=event_id, type="user.updated", content_type=CONTENT_TYPE),
        routing_key=flaky.name,
    )
    already = await count(channel, DLQ)

    async def dead_lettered() -> bool:
        message = await flaky.get(fail=False)
        if message is not None:
            await message.nack(requeue=True)  # as a consumer that crashes on it would
        return await count(channel, DLQ) > already

    await eventually(dead_lettered, timeout=10, what="RabbitMQ to dead-letter the message")
    return flaky.name


async def count(channel: AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return declared.declaration_result.message_count or 0


async def holds(channel: AbstractChannel, queue: str, messages: int) -> None:
    """Wait until `queue` holds `messages` ready messages.

    A message given back to a quorum queue (nack with requeue, or unacked when its channel
    closes) is ready again only once the queue has applied the return, a moment later.
    """

    async def reached() -> bool:
        return await count(channel, queue) == messages

    await eventually(reached, timeout=10, what=f"{messages} message(s) in {queue}")


async def take_all(channel: AbstractChannel, queue: str) -> list[AbstractIncomingMessage]:
    declared = await channel.get_queue(queue)
    messages = []
    while (message := await declared.get(no_ack=True, fail=False)) is not None:
        messages.append(message)
    return messages


def bookkeeping_headers(message: AbstractIncomingMessage) -> set[str]:
    """x- headers other than the delivery count a quorum queue adds to every delivery."""
    return {name for name in message.headers or {} if name.startswith("x-")} - {"x-delivery-count"}


async def run_cli(amqp_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broker", "dlq", *args],
        env={**os.environ, "AMQP_URL": amqp_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_list_counts_the_messages_waiting_in_each_dead_letter_queue(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    for _ in range(2):
        await dead_letter_as_the_consumer_does(channel, *an_event())

    listed = await dlq.list_dead_letters(connection)

    assert listed == [
        dlq.DeadLetterQueue(USER_SVC_QUEUE.name, USER_SVC_QUEUE.dead_letter_queue, 0),
        dlq.DeadLetterQueue(ORDER_SVC_QUEUE.name, DLQ, 2),
        dlq.DeadLetterQueue(INVENTORY_SVC_QUEUE.name, INVENTORY_SVC_QUEUE.dead_letter_queue, 0),
    ]


async def test_list_reports_a_dead_letter_queue_that_is_not_declared(amqp_url: str) -> None:
    async with await aio_pika.connect(amqp_url) as connection:
        listed = await dlq.list_dead_letters(connection)

    assert [q.messages for q in listed] == [None, None, None]


async def test_show_describes_dead_letters_and_leaves_them_in_the_dead_letter_queue(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    event_id, body = an_event()
    await dead_letter_as_the_consumer_does(channel, event_id, body)

    [letter] = await dlq.show(connection, ORDER_SVC_QUEUE)

    assert letter == dlq.DeadLetter(
        message_id=event_id,
        type="user.updated",
        original_queue=ORDER_SVC_QUEUE.name,
        reason="RuntimeError: database unavailable",
        exception_type="RuntimeError",
        attempts=5,
        body_preview=body.decode()[: dlq.PREVIEW_CHARS - 1] + "…",
    )
    await holds(channel, DLQ, 1)


async def test_show_explains_a_broker_dead_letter_from_its_x_death_header(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    event_id, body = an_event()
    flaky = await dead_letter_by_the_delivery_limit(channel, event_id, body)

    [letter] = await dlq.show(connection, ORDER_SVC_QUEUE)

    assert (letter.message_id, letter.original_queue) == (event_id, flaky)
    assert (letter.reason, letter.exception_type, letter.attempts) == ("delivery_limit", None, None)


async def test_replay_moves_a_dead_letter_back_to_its_original_queue(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    event_id, body = an_event()
    await dead_letter_as_the_consumer_does(channel, event_id, body)

    [replayed] = await dlq.replay(connection, ORDER_SVC_QUEUE)

    assert (replayed.message_id, replayed.original_queue) == (event_id, ORDER_SVC_QUEUE.name)
    [message] = await take_all(channel, ORDER_SVC_QUEUE.name)
    assert (message.message_id, message.body) == (event_id, body)
    assert await count(channel, DLQ) == 0


async def test_a_replayed_message_is_the_original_without_its_dead_letter_headers(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    event_id, body = an_event()
    await dead_letter_as_the_consumer_does(channel, event_id, body)

    await dlq.replay(connection, ORDER_SVC_QUEUE)

    [message] = await take_all(channel, ORDER_SVC_QUEUE.name)
    assert (message.type, message.content_type) == ("user.updated", CONTENT_TYPE)
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert bookkeeping_headers(message) == set()


async def test_replay_sends_a_broker_dead_letter_back_to_the_queue_named_in_x_death(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    event_id, body = an_event()
    flaky = await dead_letter_by_the_delivery_limit(channel, event_id, body)

    await dlq.replay(connection, ORDER_SVC_QUEUE)

    [message] = await take_all(channel, flaky)
    assert (message.message_id, message.body) == (event_id, body)
    assert bookkeeping_headers(message) == set()
    assert await count(channel, ORDER_SVC_QUEUE.name) == 0
    assert await count(channel, DLQ) == 0


async def test_replay_with_an_id_moves_only_that_message(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    events = [an_event() for _ in range(3)]
    for event_id, body in events:
        await dead_letter_as_the_consumer_does(channel, event_id, body)
    chosen = events[1][0]

    replayed = await dlq.replay(connection, ORDER_SVC_QUEUE, event_id=chosen)

    assert [letter.message_id for letter in replayed] == [chosen]
    assert [m.message_id for m in await take_all(channel, ORDER_SVC_QUEUE.name)] == [chosen]
    await holds(channel, DLQ, 2)
    assert {m.message_id for m in await take_all(channel, DLQ)} == {events[0][0], events[2][0]}


async def test_replay_with_a_limit_moves_at_most_that_many(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    for _ in range(3):
        await dead_letter_as_the_consumer_does(channel, *an_event())

    replayed = await dlq.replay(connection, ORDER_SVC_QUEUE, limit=2)

    assert len(replayed) == 2
    assert await count(channel, ORDER_SVC_QUEUE.name) == 2
    assert await count(channel, DLQ) == 1


async def test_a_message_whose_original_queue_is_gone_stays_in_the_dead_letter_queue(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    event_id, body = an_event()
    await dead_letter_as_the_consumer_does(channel, event_id, body, original_queue="gone.events")

    with pytest.raises(dlq.ReplayFailed, match=r"gone\.events"):
        await dlq.replay(connection, ORDER_SVC_QUEUE)

    await holds(channel, DLQ, 1)
    [message] = await take_all(channel, DLQ)
    assert (message.message_id, message.body) == (event_id, body)


async def test_purge_empties_the_dead_letter_queue(
    connection: AbstractConnection, channel: AbstractChannel
) -> None:
    for _ in range(3):
        await dead_letter_as_the_consumer_does(channel, *an_event())

    purged = await dlq.purge(connection, ORDER_SVC_QUEUE)

    assert purged == 3
    assert await count(channel, DLQ) == 0


async def test_the_cli_lists_each_dead_letter_queue_with_its_count(
    amqp_url: str, channel: AbstractChannel
) -> None:
    await dead_letter_as_the_consumer_does(channel, *an_event())

    result = await run_cli(amqp_url, "list")

    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[1:] == [
        [USER_SVC_QUEUE.name, USER_SVC_QUEUE.dead_letter_queue, "0"],
        [ORDER_SVC_QUEUE.name, DLQ, "1"],
        [INVENTORY_SVC_QUEUE.name, INVENTORY_SVC_QUEUE.dead_letter_queue, "0"],
    ]


async def test_the_cli_refuses_an_unknown_queue_with_exit_status_2() -> None:
    nowhere = "amqp://guest:guest@127.0.0.1:1/"  # the name is refused before any connection

    result = await run_cli(nowhere, "show", "billing_svc.events")

    assert result.returncode == 2
    assert "unknown queue 'billing_svc.events'" in result.stderr


async def test_the_cli_purges_nothing_without_yes(amqp_url: str, channel: AbstractChannel) -> None:
    await dead_letter_as_the_consumer_does(channel, *an_event())

    result = await run_cli(amqp_url, "purge", DLQ)

    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert await count(channel, DLQ) == 1
