"""The event consumer: validated, idempotent, transactional handling of one queue's messages.

For every message, in this order:

1. Decode and validate the CloudEvent and its `data`. A message that can never be processed
   (not a CloudEvent, unknown type, invalid data, no handler here) goes to `<queue>.dlq` at once
   with the reason in a header, and is acked: it never blocks the queue or stops the consumer.
2. In one database transaction: claim the event id in the inbox (a duplicate is skipped), run the
   handler, let the unit of work write the resulting events to the outbox, commit.
3. Ack only after the commit. A crash before the ack redelivers the message; the inbox makes the
   redelivery a no-op. A crash before the commit rolls everything back; the redelivery applies it.

A failing handler is retried with exponential backoff and jitter; after the attempt limit the
message goes to the DLQ with the exception type, message and attempt count in headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from sqlalchemy import Table
from tenacity import AsyncRetrying, stop_after_attempt, wait_random_exponential

from broker.topology import Queue
from shared import inbox
from shared.envelope import CloudEvent, InvalidEvent, decode
from shared.metrics import Metrics
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

U = TypeVar("U", bound=UnitOfWork)
Handler = Callable[[Any, CloudEvent, U], Awaitable[None]]


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    event_type: str = "unknown"
    reason: str | None = None
    exception_type: str | None = None
    attempts: int = 0


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
        self._channel: AbstractChannel | None = None
        self._consumer_tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        """The consumer's identity in the inbox: one inbox row per (queue, event id)."""
        return self.queue.name

    async def start(self, amqp: AbstractConnection) -> None:
        self._channel = await amqp.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self._prefetch)
        queue = await self._channel.get_queue(self.queue.name, ensure=False)
        self._consumer_tag = await queue.consume(self._on_message)

    async def stop(self) -> None:
        """Stop taking messages, let the in-flight ones finish (and ack), close the channel."""
        channel = self._channel
        if channel is None:
            return
        if self._consumer_tag is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                queue = await channel.get_queue(self.queue.name, ensure=False)
                await queue.cancel(self._consumer_tag)
        # In-flight messages still need the channel: to dead-letter and to ack.
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._channel = None
        with contextlib.suppress(Exception):
            await channel.close()

    async def handle(self, body: bytes) -> Result:
        """Process one message body; never raises for a bad message or a failing handler."""
        try:
            envelope, data = decode(body)
        except InvalidEvent as error:
            return Result(Outcome.DEAD_LETTERED, reason=error.reason, exception_type="InvalidEvent")
        handler = self._handlers.get(envelope.type)
        if handler is None:
            return Result(
                Outcome.DEAD_LETTERED,
                event_type=envelope.type,
                reason=f"{self.name} has no handler for {envelope.type}",
                exception_type="InvalidEvent",
            )
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._max_attempts),
                wait=wait_random_exponential(multiplier=0.05, max=2.0),
                reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if attempts > 1:
                        log.warning(
                            "retrying %s %s (attempt %d of %d)",
                            envelope.type,
                            envelope.id,
                            attempts,
                            self._max_attempts,
                        )
                    applied = await self._apply(handler, data, envelope)
        except Exception as error:
            log.exception("handler for %s %s failed %d times", envelope.type, envelope.id, attempts)
            return Result(
                Outcome.DEAD_LETTERED,
                event_type=envelope.type,
                reason=str(error)[:1000] or repr(error),
                exception_type=type(error).__name__,
                attempts=attempts,
            )
        outcome = Outcome.APPLIED if applied else Outcome.DUPLICATE
        return Result(outcome, event_type=envelope.type, attempts=attempts)

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
        try:
            result = await self.handle(message.body)
            if result.outcome is Outcome.DEAD_LETTERED:
                await self._dead_letter(message, result)
            await message.ack()
        except Exception:
            # Could not even dead-letter (broker or channel trouble): give the message back.
            # RabbitMQ's delivery limit dead-letters it if this repeats forever.
            log.exception("could not settle message %s, requeueing it", message.message_id)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        finally:
            if task is not None:
                self._in_flight.discard(task)
        self._metrics.messages_consumed.labels(result.event_type, result.outcome).inc()
        self._metrics.handler_duration.labels(result.event_type).observe(
            time.perf_counter() - started
        )

    async def _dead_letter(self, message: AbstractIncomingMessage, result: Result) -> None:
        if self._channel is None:
            raise RuntimeError("consumer is stopped")
        log.error(
            "dead-lettering message %s from %s: %s",
            message.message_id,
            self.queue.name,
            result.reason,
        )
        headers: dict[str, Any] = dict(message.headers or {})
        headers.update(
            {
                "x-dead-letter-reason": result.reason,
                "x-exception-type": result.exception_type,
                "x-attempts": result.attempts,
                "x-original-exchange": message.exchange,
                "x-original-routing-key": message.routing_key,
                "x-original-queue": self.queue.name,
            }
        )
        await self._channel.default_exchange.publish(
            aio_pika.Message(
                body=message.body,
                headers=headers,
                message_id=message.message_id,
                type=message.type,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.queue.dead_letter_queue,
        )
