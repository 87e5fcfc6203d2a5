"""Dead-letter queues by hand: list, look inside, replay, purge (`python -m broker dlq`).

A message reaches `<queue>.dlq` in one of two ways:

- the consumer (`shared/messaging/consumer.py`) publishes it there, with the original body and
  properties and `x-dead-letter-reason`, `x-exception-type`, `x-attempts`, `x-original-exchange`,
  `x-original-routing-key` and `x-original-queue` headers (invalid message, or a handler that kept
  failing);
- RabbitMQ dead-letters it itself when the quorum queue's delivery limit is exceeded (a message
  that kept killing the consumer process); it then carries RabbitMQ's `x-death` list and the
  `x-first-death-*` headers instead.

What each operation guarantees:

- `show` removes nothing. It takes messages with basic.get *without* acking them and requeues all
  of them at the end; if it dies in between, the broker requeues them when the channel closes.
  The quorum queue applies the requeue asynchronously, so for a moment after `show` the DLQ's
  count (and what a `replay` started at once can see) may be short of the messages shown. Each
  look also counts as a redelivery on the quorum DLQ; the DLQs have no delivery limit on RabbitMQ
  3.x, so that is harmless there (4.x gives quorum queues a default limit of 20, which the DLQs
  would then have to lift, or repeated looks would end by dropping the message).
- `replay` never loses a message. Each one is republished and the publisher confirm awaited
  *before* it is acked from the DLQ: a crash in between leaves the message in both places, a
  duplicate that the idempotent consumer (inbox keyed by event id) turns into a no-op. It is
  published as mandatory with returns raising, so a message whose original queue no longer exists
  stays in the DLQ instead of being silently dropped by the broker.
- `replay` publishes to the *default* exchange with the original queue as routing key, on
  purpose, not to the `events` exchange: republishing on `events` would fan the event out again
  to every queue bound to its type, i.e. to other services that already handled it (or
  dead-lettered it into their own DLQ). Only the queue that failed should see it again.
- `replay` takes at most as many messages as the DLQ held when it started, so a message that
  fails again at once and comes straight back is not replayed in a loop.
- The replayed copy keeps body, `message_id` (= CloudEvent id), `type` and `content_type`, and is
  persistent; the bookkeeping headers (dead-letter reason, `x-death`, `x-original-*`, the attempt
  counters) are dropped so that it starts afresh, at attempt 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
    HeadersType,
)

from broker.topology import TOPOLOGY, Queue, Topology

PREVIEW_CHARS = 60

# RabbitMQ (x-death, x-first-death-*, x-delivery-count) and our consumer (x-dead-letter-reason,
# x-original-*, x-attempts, and its retry counter x-attempt and x-last-error) keep their
# bookkeeping in x- headers, and events are published with none (the relay sets no headers).
# Dropping every x- header gives the message back as it was first published: a replay starts
# at attempt 1 instead of being dead-lettered again at its first failure.
_BOOKKEEPING_PREFIX = "x-"


class UnknownQueue(LookupError):
    """The name is neither a queue of the topology nor the DLQ of one."""

    def __init__(self, name: str, topology: Topology = TOPOLOGY) -> None:
        known = ", ".join(q.name for q in topology.queues)
        super().__init__(f"unknown queue {name!r}: expected one of {known} (or its .dlq)")


class DeadLetterQueueMissing(LookupError):
    """The DLQ is not declared on the broker (run `python -m broker declare`)."""


class ReplayFailed(Exception):
    """A replay stopped at a message it could not republish; that one is still in the DLQ."""

    def __init__(self, message: str, replayed: Sequence[DeadLetter]) -> None:
        super().__init__(message)
        self.replayed = tuple(replayed)


@dataclass(frozen=True)
class DeadLetterQueue:
    queue: str
    name: str
    messages: int | None  # None: not declared on the broker


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    type: str | None
    original_queue: str
    reason: str | None
    exception_type: str | None
    attempts: int | None
    body_preview: str


def find_queue(name: str, topology: Topology = TOPOLOGY) -> Queue:
    """The topology queue called `name`, or whose DLQ is called `name`."""
    for queue in topology.queues:
        if name in (queue.name, queue.dead_letter_queue):
            return queue
    raise UnknownQueue(name, topology)


async def list_dead_letters(
    connection: AbstractConnection, topology: Topology = TOPOLOGY
) -> list[DeadLetterQueue]:
    """Every queue of the topology with its DLQ and the number of messages waiting there."""
    result = []
    for queue in topology.queues:
        try:
            # One channel per queue: a passive declare of a missing queue closes its channel.
            async with connection.channel() as channel:
                dlq = await _passive_declare(channel, queue.dead_letter_queue)
                count: int | None = dlq.declaration_result.message_count or 0
        except DeadLetterQueueMissing:
            count = None
        result.append(DeadLetterQueue(queue.name, queue.dead_letter_queue, count))
    return result


async def show(
    connection: AbstractConnection, queue: Queue, *, limit: int = 10
) -> list[DeadLetter]:
    """Up to `limit` messages of `queue`'s DLQ, oldest first, leaving them all in the DLQ."""
    async with connection.channel() as channel:
        dlq = await _passive_declare(channel, queue.dead_letter_queue)
        taken: list[AbstractIncomingMessage] = []
        while len(taken) < limit:
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        # Requeue only once all are taken: requeueing one by one would get the same one again.
        for message in taken:
            await message.nack(requeue=True)
    return [describe(message, queue) for message in taken]


async def replay(
    connection: AbstractConnection,
    queue: Queue,
    *,
    event_id: str | None = None,
    limit: int | None = None,
) -> list[DeadLetter]:
    """Move messages of `queue`'s DLQ back to the queue each came from; return those moved.

    With `event_id`, only the messages with that id (normally one; at-least-once dead-lettering
    may have made copies, and replaying them all is as safe as replaying one). With `limit`, at
    most that many. Raises `ReplayFailed` at the first message that cannot be republished.
    """
    replayed: list[DeadLetter] = []
    async with connection.channel(publisher_confirms=True, on_return_raises=True) as channel:
        dlq = await _passive_declare(channel, queue.dead_letter_queue)
        budget = dlq.declaration_result.message_count or 0
        skipped: list[AbstractIncomingMessage] = []
        for _ in range(budget):
            if limit is not None and len(replayed) >= limit:
                break
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            if event_id is not None and message.message_id != event_id:
                skipped.append(message)  # held unacked so that the next get moves on
                continue
            letter = describe(message, queue)
            try:
                await channel.default_exchange.publish(
                    fresh_copy(message), routing_key=letter.original_queue, mandatory=True
                )
            except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError) as e:
                # Not acked, so it goes back to the DLQ, with the skipped ones, on channel close.
                raise ReplayFailed(
                    f"could not republish {letter.message_id} to {letter.original_queue}: {e!r}",
                    replayed,
                ) from e
            # Acked only now that the broker confirmed the copy: a crash before this line
            # duplicates the message (harmless, the consumer is idempotent) but never loses it.
            await message.ack()
            replayed.append(letter)
        for message in skipped:
            await message.nack(requeue=True)
    return replayed


async def purge(connection: AbstractConnection, queue: Queue) -> int:
    """Delete every message of `queue`'s DLQ; return how many there were."""
    async with connection.channel() as channel:
        dlq = await _passive_declare(channel, queue.dead_letter_queue)
        purged = await dlq.purge()
    return int(purged.message_count or 0)


def describe(message: AbstractIncomingMessage, queue: Queue) -> DeadLetter:
    """What a dead letter is and why it is here, whichever of the two ways it arrived."""
    headers = message.headers or {}
    death = _latest_death(headers)
    attempts = headers.get("x-attempts")
    return DeadLetter(
        message_id=message.message_id,
        type=message.type,
        original_queue=original_queue(message, queue),
        reason=_text(headers.get("x-dead-letter-reason")) or _text(death.get("reason")),
        exception_type=_text(headers.get("x-exception-type")),
        attempts=attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else None,
        body_preview=_preview(message.body),
    )


def original_queue(message: AbstractIncomingMessage, queue: Queue) -> str:
    """The queue a dead letter came from: our consumer's header, else RabbitMQ's, else the owner.

    `x-death` lists the most recent dead-lettering first, so its first entry is the queue the
    message last left.
    """
    headers = message.headers or {}
    return (
        _text(headers.get("x-original-queue"))
        or _text(_latest_death(headers).get("queue"))
        or queue.name
    )


def fresh_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The message as first published: same body and identity, no dead-letter bookkeeping."""
    headers: HeadersType = {
        name: value
        for name, value in (message.headers or {}).items()
        if not name.startswith(_BOOKKEEPING_PREFIX)
    }
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        message_id=message.message_id,
        type=message.type,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        correlation_id=message.correlation_id,
        timestamp=message.timestamp,
        app_id=message.app_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def _passive_declare(channel: AbstractChannel, name: str) -> AbstractQueue:
    try:
        return await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity as e:
        raise DeadLetterQueueMissing(
            f"{name} is not declared on the broker (run `python -m broker declare`)"
        ) from e


def _latest_death(headers: Mapping[str, object]) -> Mapping[str, object]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _preview(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
