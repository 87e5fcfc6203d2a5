"""The event consumer: validated, idempotent, transactional handling of one queue's messages.

For every message, in this order:

1. Decode and validate the CloudEvent and its `data`. A message that can never be processed
   (not a CloudEvent, unknown type, invalid data, no handler here) goes to `<queue>.dlq` at once
   with the reason in a header, and is acked: it never blocks the queue or stops the consumer.
2. In one database transaction: claim the event id in the inbox (a duplicate is skipped), run the
   handler, let the unit of work write the resulting events to the outbox, commit.
3. Ack only after the commit. A crash before the ack redelivers the message; the inbox makes the
   redelivery a no-op. A crash before the commit rolls everything back; the redelivery applies it.

A failing handler (database down, deadlock, a bug) does not block the queue: the message is
parked in the queue's delay queue for its attempt (`x-attempt` header counts attempts) and comes
back after the delay, while the messages behind it go on. After `max_attempts` it goes to the DLQ
with the exception type, message and attempt count in headers. The copy is published (and
confirmed) before the original is acked: a crash in between duplicates, which the inbox absorbs,
and never loses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from opentelemetry.trace import SpanKind
from sqlalchemy import Table

from broker.topology import Queue
from shared import inbox
from shared.envelope import CONTENT_TYPE, CloudEvent, InvalidEvent, decode
from shared.logs import message_context
from shared.metrics import Metrics
from shared.tracing import continued_span
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

U = TypeVar("U", bound=UnitOfWork)
Handler = Callable[[Any, CloudEvent, U], Awaitable[None]]


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    """The handler raised: worth another attempt."""
    INVALID = "invalid"
    """The message can never be processed here: straight to the DLQ."""


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    envelope: CloudEvent | None = None
    reason: str | None = None
    exception_type: str | None = None

    @property
    def event_type(self) -> str:
        return self.envelope.type if self.envelope else "unknown"


ATTEMPT_HEADER = "x-attempt"
MAX_HEADER_TEXT = 1_000


class EventConsumer(Generic[U]):
    def __init__(
        self,
        *,
        queue: Queue,
        handlers: Mapping[str, Handler[U]],
        unit_of_work: Callable[[CloudEvent], U],
        inbox_table: Table,
        metrics: Metrics,
        prefetch: int,
        max_attempts: int,
        max_message_bytes: int = 256 * 1024,
    ) -> None:
        if set(handlers) != set(queue.bindings):
            raise ValueError(
                f"handlers {sorted(handlers)} do not match the bindings of {queue.name}: "
                f"{sorted(queue.bindings)}"
            )
        self.queue = queue
        self._handlers = handlers
        self._unit_of_work = unit_of_work
        self._inbox = inbox_table
        self._metrics = metrics
        self._prefetch = prefetch
        self._max_attempts = max_attempts
        self._max_message_bytes = max_message_bytes
        self._channel: AbstractChannel | None = None
        self._amqp_queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        """The consumer's identity in the inbox: one inbox row per (queue, event id)."""
        return self.queue.name

    async def start(self, amqp: AbstractConnection) -> None:
        self._channel = await amqp.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self._prefetch)
        # Declared (idempotently), not just looked up: a robust channel restores the consumers
        # of the queues it declared after a reconnect, and only those.
        self._amqp_queue = await self._channel.declare_queue(
            self.queue.name, durable=True, arguments=self.queue.arguments
        )
        self._consumer_tag = await self._amqp_queue.consume(self._on_message)

    async def stop(self) -> None:
        """Stop taking messages, let the in-flight ones finish (and ack), close the channel."""
        channel = self._channel
        if channel is None:
            return
        if self._amqp_queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._amqp_queue.cancel(self._consumer_tag)
        # In-flight messages still need the channel: to dead-letter and to ack.
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._channel = None
        with contextlib.suppress(Exception):
            await channel.close()

    async def handle(self, body: bytes, content_type: str | None = CONTENT_TYPE) -> Result:
        """One attempt at one message; never raises for a bad message or a failing handler.

        A message without a content type is judged by its body; one that declares another
        content type than structured CloudEvents JSON is not ours to interpret.
        """
        if content_type is not None and content_type != CONTENT_TYPE:
            return Result(
                Outcome.INVALID,
                reason=f"content type {content_type[:100]!r} is not {CONTENT_TYPE}",
                exception_type="InvalidEvent",
            )
        if len(body) > self._max_message_bytes:
            # Not even parsed: a huge body is where parser bombs and memory exhaustion live.
            return Result(
                Outcome.INVALID,
                reason=f"message of {len(body)} bytes exceeds the {self._max_message_bytes} cap",
                exception_type="MessageTooLarge",
            )
        try:
            envelope, data = decode(body)
        except InvalidEvent as error:
            return Result(Outcome.INVALID, reason=error.reason, exception_type="InvalidEvent")
        self._metrics.event_age.labels(envelope.type).observe(
            max((datetime.now(UTC) - envelope.time).total_seconds(), 0.0)
        )
        handler = self._handlers.get(envelope.type)
        if handler is None:
            return Result(
                Outcome.INVALID,
                envelope=envelope,
                reason=f"{self.name} has no handler for {envelope.type}",
                exception_type="InvalidEvent",
            )
        try:
            with (
                message_context(envelope),
                continued_span(
                    f"{envelope.type} process",
                    traceparent=envelope.traceparent,
                    kind=SpanKind.CONSUMER,
                ) as span,
            ):
                span.set_attribute("messaging.destination.name", self.queue.name)
                span.set_attribute("messaging.message.id", str(envelope.id))
                applied = await self._apply(handler, data, envelope)
        except Exception as error:
            return Result(
                Outcome.FAILED,
                envelope=envelope,
                reason=f"{type(error).__name__}: {error}"[:1000],
                exception_type=type(error).__name__,
            )
        return Result(Outcome.APPLIED if applied else Outcome.DUPLICATE, envelope=envelope)

    async def _apply(self, handler: Handler[U], data: Any, envelope: CloudEvent) -> bool:
        async with self._unit_of_work(envelope) as uow:
            claimed = await inbox.claim(
                uow.connection,
                self._inbox,
                consumer=self.name,
                event_id=envelope.id,
                event_type=envelope.type,
            )
            if not claimed:
                return False
            await handler(data, envelope, uow)
            await uow.commit()
            return True

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        started = time.perf_counter()
        attempt = _attempt(message)
        try:
            result = await self.handle(message.body, message.content_type)
            with message_context(result.envelope) if result.envelope else nullcontext():
                settled = await self._settle(message, result, attempt)
            await message.ack()
        except Exception:
            # Could not even park or dead-letter it (broker or channel trouble): give it back.
            # RabbitMQ's delivery limit dead-letters it if this repeats forever.
            log.exception("could not settle message %s, requeueing it", message.message_id)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        finally:
            if task is not None:
                self._in_flight.discard(task)
        self._metrics.messages_consumed.labels(result.event_type, settled).inc()
        self._metrics.handler_duration.labels(result.event_type).observe(
            time.perf_counter() - started
        )

    async def _settle(self, message: AbstractIncomingMessage, result: Result, attempt: int) -> str:
        """Park a failed message for a retry or dead-letter it; return the outcome to count."""
        if result.outcome is Outcome.FAILED and attempt < self._max_attempts:
            retry_queue = self.queue.retry_queue(attempt)
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
                message,
                retry_queue,
                {ATTEMPT_HEADER: attempt + 1, "x-last-error": result.reason},
            )
            return "retried"
        if result.outcome in (Outcome.FAILED, Outcome.INVALID):
            log.error(
                "dead-lettering %s %s from %s after %d attempt(s): %s",
                result.event_type,
                message.message_id,
                self.queue.name,
                attempt,
                result.reason,
            )
            await self._forward(
                message,
                self.queue.dead_letter_queue,
                {
                    "x-dead-letter-reason": result.reason,
                    "x-exception-type": result.exception_type,
                    "x-attempts": attempt,
                    "x-original-exchange": message.exchange,
                    "x-original-routing-key": message.routing_key,
                    "x-original-queue": self.queue.name,
                },
            )
            return "dead_lettered"
        return result.outcome.value

    async def _forward(
        self, message: AbstractIncomingMessage, queue: str, extra_headers: dict[str, Any]
    ) -> None:
        """Publish a copy of `message` straight to `queue` and wait for the broker's confirm."""
        if self._channel is None:
            raise RuntimeError("consumer is stopped")
        # Only our own bookkeeping travels with the copy, each value bounded: a header frame
        # larger than the broker's frame size closes the whole connection.
        headers: dict[str, Any] = {
            name: value[:MAX_HEADER_TEXT] if isinstance(value, str) else value
            for name, value in extra_headers.items()
        }
        attempt = (message.headers or {}).get(ATTEMPT_HEADER)
        if ATTEMPT_HEADER not in headers and isinstance(attempt, int):
            headers[ATTEMPT_HEADER] = attempt
        await self._channel.default_exchange.publish(
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


def _attempt(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return value if isinstance(value, int) and value >= 1 else 1
