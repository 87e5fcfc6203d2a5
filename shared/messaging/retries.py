"""Settling a delivery once its outcome is known: ack it, park it for a retry, or dead-letter it.

A failing handler (database down, deadlock, a bug) does not block the queue: the message is
parked in the queue's delay queue for its attempt (`x-attempt` counts attempts) and comes back
after the delay, while the messages behind it go on. After `max_attempts` it goes to the DLQ
with the exception type, message and attempt count in headers; so does, at once, a message that
can never be processed. The copy is published (and confirmed) before the original is acked: a
crash in between duplicates, which the inbox absorbs, and never loses.

A delivery whose channel has closed (a broker node went away, the connection dropped) is already
back in its queue: RabbitMQ requeues every unacknowledged delivery of a channel that closes. It
can no longer be acked (its delivery tag meant something only on that channel), and a retry or
dead-letter copy published on the reopened channel would be a second one beside the redelivery,
so settling it stops before the copy and raises `ChannelInvalidStateError`, as its ack would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError

from broker.topology import Queue
from shared.messaging.binding import attribute_headers
from shared.messaging.middleware import Delivery, Outcome

log = logging.getLogger(__name__)

ATTEMPT_HEADER = "x-attempt"
MAX_HEADER_TEXT = 1_000


class RetryRouting:
    """The last step of settling: where the delivery goes, then its ack."""

    def __init__(
        self, *, queue: Queue, channel: Callable[[], AbstractChannel | None], max_attempts: int
    ) -> None:
        self._queue = queue
        self._channel = channel
        self._max_attempts = max_attempts

    async def __call__(self, delivery: Delivery) -> str:
        """Route and ack the delivery; what became of it (an outcome to count)."""
        message = delivery.message
        if channel_closed(message):
            raise ChannelInvalidStateError(
                f"the channel of message {message.message_id} closed before it was settled"
            )
        settled = await self._route(delivery)
        await message.ack()
        return settled

    async def _route(self, delivery: Delivery) -> str:
        message, result = delivery.message, delivery.result
        attempt = attempt_of(message)
        if result.outcome is Outcome.FAILED and attempt < self._max_attempts:
            retry_queue = self._queue.retry_queue(attempt)
            log.warning(
                "%s %s failed (attempt %d of %d), retrying via %s: %s",
                result.event_type,
                message.message_id,
                attempt,
                self._max_attempts,
                retry_queue,
                result.reason,
            )
            await self._forward(
                message, retry_queue, {ATTEMPT_HEADER: attempt + 1, "x-last-error": result.reason}
            )
            return "retried"
        if result.outcome in (Outcome.FAILED, Outcome.INVALID):
            log.error(
                "dead-lettering %s %s from %s after %d attempt(s): %s",
                result.event_type,
                message.message_id,
                self._queue.name,
                attempt,
                result.reason,
            )
            await self._forward(
                message,
                self._queue.dead_letter_queue,
                {
                    "x-dead-letter-reason": result.reason,
                    "x-exception-type": result.exception_type,
                    "x-attempts": attempt,
                    "x-original-exchange": message.exchange,
                    "x-original-routing-key": message.routing_key,
                    "x-original-queue": self._queue.name,
                },
            )
            return "dead_lettered"
        return result.outcome.value

    async def _forward(
        self, message: AbstractIncomingMessage, queue: str, extra_headers: dict[str, Any]
    ) -> None:
        """Publish a copy of `message` straight to `queue` and wait for the broker's confirm."""
        channel = self._channel()
        if channel is None:
            raise RuntimeError("consumer is stopped")
        # Only a binary-mode event's attributes (bounded) and our own bookkeeping (each value
        # bounded) travel with the copy: a header frame larger than the broker's frame size
        # closes the whole connection.
        headers: dict[str, Any] = attribute_headers(message.headers) | {
            name: value[:MAX_HEADER_TEXT] if isinstance(value, str) else value
            for name, value in extra_headers.items()
        }
        attempt = (message.headers or {}).get(ATTEMPT_HEADER)
        if ATTEMPT_HEADER not in headers and isinstance(attempt, int):
            headers[ATTEMPT_HEADER] = attempt
        await channel.default_exchange.publish(
            aio_pika.Message(
                body=message.body,
                headers=headers,
                message_id=message.message_id,
                type=message.type,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=queue,
        )


def channel_closed(message: AbstractIncomingMessage) -> bool:
    """Whether the channel `message` came on has closed, which gave it back to the broker."""
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:  # how aio-pika answers for a closed channel
        return True


def attempt_of(message: AbstractIncomingMessage) -> int:
    """Which attempt this delivery is (1 for the first)."""
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value >= 1 else 1
