"""The event consumer: validated, idempotent, transactional handling of one queue's messages.

For every message, in this order:

1. Decode and validate the CloudEvent, in structured or binary mode (`shared.messaging.binding`),
   and its `data`. A message that can never be processed (not a CloudEvent, unknown type, invalid
   data, no handler here) goes to `<queue>.dlq` at once with the reason in a header, and is
   acked: it never blocks the queue or stops the consumer.
2. In one database transaction: claim the event id in the inbox (a duplicate is skipped), run the
   handler, let the unit of work write the resulting events to the outbox, commit.
3. Ack only after the commit. A crash before the ack redelivers the message; the inbox makes the
   redelivery a no-op. A crash before the commit rolls everything back; the redelivery applies it.
   A channel that closes before the ack (a broker node going away) is the same case: RabbitMQ
   requeues every unacknowledged delivery of a closed channel by itself. Such a delivery is
   neither nacked (there is no channel to do it on) nor logged as a failure: a batch cut off
   by a broker restart is one warning, not a traceback per message hiding the real problems.

Messages that are already waiting when a worker becomes free are applied together, up to
`batch_size`, in one transaction: one inbox insert, one statement locking the rows the handlers
will change (`UnitOfWork.preload`), the handlers in delivery order, one outbox insert, one
commit. That divides the fixed cost of a transaction (connection checkout, begin, commit and its
WAL flush) and of the row locks by the batch, and costs no latency: a worker never waits to fill
a batch. If anything in a batch fails, the transaction rolls back and each of its messages is
applied again on its own, so one bad message only ever affects itself.

What becomes of each message afterwards (ack, retry, dead letter) is `shared.messaging.retries`;
the logging context, tracing and metrics around it are middleware (`shared.messaging.middleware`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import ChannelInvalidStateError
from sqlalchemy import Table

from broker.topology import Queue
from shared.messaging import inbox
from shared.messaging.binding import as_structured
from shared.messaging.envelope import CONTENT_TYPE, CloudEvent, InvalidEvent, decode
from shared.messaging.middleware import (
    ConsumerMiddleware,
    Delivery,
    Handling,
    LogContext,
    Measured,
    Outcome,
    Result,
    Tracing,
    chain_handle,
    chain_settle,
)
from shared.messaging.retries import RetryRouting, channel_closed
from shared.observability.metrics import Metrics
from shared.observability.tracing import untraced
from shared.persistence.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

U = TypeVar("U", bound=UnitOfWork)
Handler = Callable[[Any, CloudEvent, U], Awaitable[None]]


@dataclass(frozen=True)
class _Decoded:
    """A message that passed validation and has a handler here: ready to apply."""

    envelope: CloudEvent
    data: Any
    handler: Handler[Any]


class EventConsumer(Generic[U]):
    def __init__(
        self,
        *,
        queue: Queue,
        handlers: Mapping[str, Handler[U]],
        unit_of_work: Callable[[], U],
        inbox_table: Table,
        metrics: Metrics,
        prefetch: int,
        max_attempts: int,
        max_message_bytes: int = 256 * 1024,
        batch_size: int = 1,
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
        self._prefetch = prefetch
        self._max_message_bytes = max_message_bytes
        self._batch_size = batch_size
        self._channel: AbstractChannel | None = None
        self._amqp_queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._delivered: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        middleware: tuple[ConsumerMiddleware, ...] = (
            LogContext(),
            Tracing(queue.name),
            Measured(metrics),
        )
        self._handle = chain_handle(middleware, _run)
        self._settle = chain_settle(
            middleware,
            RetryRouting(queue=queue, channel=lambda: self._channel, max_attempts=max_attempts),
        )

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
        # Enough workers to keep every prefetched message busy, batches of `batch_size` each.
        workers = max(1, self._prefetch // self._batch_size)
        self._workers = [
            asyncio.create_task(self._work(), name=f"{self.name}-worker-{n}")
            for n in range(workers)
        ]
        self._consumer_tag = await self._amqp_queue.consume(self._deliver)

    @property
    def running(self) -> bool:
        """Subscribed to its queue on an open channel (a robust one reopens after a reconnect)."""
        return (
            self._consumer_tag is not None
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def stop(self) -> None:
        """Stop taking messages, let the delivered ones finish (and ack), close the channel."""
        channel = self._channel
        if channel is None:
            return
        if self._amqp_queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._amqp_queue.cancel(self._consumer_tag)
        self._consumer_tag = None
        # Delivered messages still need the channel: to dead-letter and to ack.
        await self._delivered.join()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._channel = None
        with contextlib.suppress(Exception):
            await channel.close()

    async def handle(
        self,
        body: bytes,
        content_type: str | None = CONTENT_TYPE,
        headers: Mapping[str, Any] | None = None,
    ) -> Result:
        """One attempt at one message (body, content type and headers, in either content mode);
        never raises for a bad message or a failing handler."""
        decoded = self._decode(body, content_type, headers)
        if isinstance(decoded, Result):
            return decoded
        return await self._apply_one(decoded)

    def _decode(
        self, body: bytes, content_type: str | None, headers: Mapping[str, Any] | None
    ) -> _Decoded | Result:
        """The message ready to apply, or the INVALID result that dead-letters it."""
        if len(body) > self._max_message_bytes:
            # Not even parsed: a huge body is where parser bombs and memory exhaustion live.
            return Result(
                Outcome.INVALID,
                reason=f"message of {len(body)} bytes exceeds the {self._max_message_bytes} cap",
                exception_type="MessageTooLarge",
            )
        try:
            envelope, data = decode(as_structured(body, content_type, headers))
        except InvalidEvent as error:
            return Result(Outcome.INVALID, reason=error.reason, exception_type="InvalidEvent")
        handler = self._handlers.get(envelope.type)
        if handler is None:
            return Result(
                Outcome.INVALID,
                envelope=envelope,
                reason=f"{self.name} has no handler for {envelope.type}",
                exception_type="InvalidEvent",
            )
        return _Decoded(envelope, data, handler)

    async def _apply_one(self, message: _Decoded) -> Result:
        """One message in its own transaction, all of it inside the middleware chain (its log
        context and span cover the inbox claim and the commit too); a failure is the message's
        own."""
        envelope = message.envelope
        claimed = False

        async def run() -> None:
            nonlocal claimed
            async with self._unit_of_work() as uow:
                claimed = await inbox.claim(
                    uow.connection,
                    self._inbox,
                    consumer=self.name,
                    event_id=envelope.id,
                    event_type=envelope.type,
                )
                if not claimed:
                    return
                with uow.caused_by(envelope):
                    await message.handler(message.data, envelope, uow)
                await uow.commit()

        try:
            await self._handle(Handling(envelope=envelope, run=run))
        except Exception as error:
            return Result(
                Outcome.FAILED,
                envelope=envelope,
                reason=f"{type(error).__name__}: {error}"[:1000],
                exception_type=type(error).__name__,
            )
        return Result(Outcome.APPLIED if claimed else Outcome.DUPLICATE, envelope=envelope)

    async def _apply_batch(self, messages: Sequence[_Decoded]) -> list[Result]:
        """Several messages in one transaction, in delivery order; raises if any one fails.

        Each handler's run goes through the middleware chain; the statements the batch shares
        (the inbox claim, the preload, the outbox insert, the commit) belong to no one message's
        trace and run untraced."""
        with untraced():
            async with self._unit_of_work() as uow:
                unclaimed = await inbox.claim_many(
                    uow.connection,
                    self._inbox,
                    consumer=self.name,
                    events=[(m.envelope.id, m.envelope.type) for m in messages],
                )
                await uow.preload([m.data for m in messages if m.envelope.id in unclaimed])
                results = []
                for message in messages:
                    envelope = message.envelope
                    # An id delivered twice in one batch is claimed once: the first copy applies.
                    if envelope.id not in unclaimed:
                        results.append(Result(Outcome.DUPLICATE, envelope=envelope))
                        continue
                    unclaimed.discard(envelope.id)
                    await self._run_handler(message, uow)
                    results.append(Result(Outcome.APPLIED, envelope=envelope))
                await uow.commit()
        return results

    async def _run_handler(self, message: _Decoded, uow: U) -> None:
        """A batch's handler inside the middleware chain; its events are caused by its message."""
        envelope = message.envelope

        async def run() -> None:
            with uow.caused_by(envelope):
                await message.handler(message.data, envelope, uow)

        await self._handle(Handling(envelope=envelope, run=run))

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        self._delivered.put_nowait(message)

    async def _work(self) -> None:
        while True:
            batch = [await self._delivered.get()]
            while len(batch) < self._batch_size and not self._delivered.empty():
                batch.append(self._delivered.get_nowait())
            try:
                await self._process(batch)
            except Exception:
                # A bug here must not kill the worker; the broker redelivers what is unsettled.
                log.exception("could not process a batch of %d messages", len(batch))
                for message in batch:
                    if channel_closed(message):
                        continue  # already back with the broker
                    with contextlib.suppress(Exception):
                        await message.nack(requeue=True)
            finally:
                for _ in batch:
                    self._delivered.task_done()

    async def _process(self, batch: Sequence[AbstractIncomingMessage]) -> None:
        started, received_at = time.perf_counter(), time.time()
        decoded = [self._decode(m.body, m.content_type, m.headers) for m in batch]
        ready = [d for d in decoded if isinstance(d, _Decoded)]
        applied: dict[int, Result] = {}
        left_to_the_broker = 0
        if len(ready) > 1:
            try:
                applied = dict(zip(map(id, ready), await self._apply_batch(ready), strict=True))
            except Exception as error:
                log.info(
                    "a batch of %d messages failed (%s: %s); applying them one by one",
                    len(ready),
                    type(error).__name__,
                    error,
                )
        for message, outcome in zip(batch, decoded, strict=True):
            if isinstance(outcome, _Decoded):
                result = applied.get(id(outcome)) or await self._apply_one(outcome)
            else:
                result = outcome
            if not await self._finish(Delivery(message, result, received_at, started)):
                left_to_the_broker += 1
        if left_to_the_broker:
            log.warning(
                "the channel closed before %d deliveries from %s were settled: the broker "
                "redelivers them (the inbox makes the redelivery of an applied one a no-op)",
                left_to_the_broker,
                self.name,
            )

    async def _finish(self, delivery: Delivery) -> bool:
        """Settle the delivery through the middleware chain, or give it back if that fails;
        False if its channel closed first, which has already given it back."""
        message = delivery.message
        try:
            await self._settle(delivery)
        except Exception as error:
            if isinstance(error, ChannelInvalidStateError) or channel_closed(message):
                # The broker requeued it when the channel closed (see the module docstring).
                return False
            # Could not even park or dead-letter it (broker or channel trouble): give it back.
            # RabbitMQ's delivery limit dead-letters it if this repeats forever.
            log.exception("could not settle message %s, requeueing it", message.message_id)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        return True


async def _run(handling: Handling) -> None:
    await handling.run()
