"""What the consumer does around every message besides applying it: logging context, tracing
and metrics, as a chain of middleware, as FastStream does it.

A middleware wraps two steps of a message's consumption, each by passing it on to `call_next`:

- `handle`: the message's processing. A message applied on its own is handled with its whole
  transaction (inbox claim, handler, commit); one applied in a batch, with its handler's turn
  in the batch's shared transaction. Whatever the middleware binds here (a log context, a
  current span) is in force while the handler runs, and the events it raises carry it.
- `settle`: what happens to the delivery once its outcome is known: ack, retry or dead-letter
  (`shared.messaging.retries`), after the transaction.

Each step passes through the chain in order, the first middleware outermost. The consumer's
core does neither logging nor tracing nor counting; adding a concern is adding a middleware.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass
from enum import StrEnum

from aio_pika.abc import AbstractIncomingMessage
from opentelemetry.trace import SpanKind

from shared.messaging.envelope import CloudEvent
from shared.observability.logs import message_context
from shared.observability.metrics import Metrics
from shared.observability.tracing import continued_span, in_trace_of


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


@dataclass(frozen=True)
class Handling:
    """One message about to be handled: its envelope, and the call that runs its handler."""

    envelope: CloudEvent
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """One delivery with its outcome, about to be settled."""

    message: AbstractIncomingMessage
    result: Result
    received_at: float
    """Wall-clock time (`time.time`) at which a worker took the delivery."""
    started: float
    """`time.perf_counter` at which its processing started."""


Handle = Callable[[Handling], Awaitable[None]]
Settle = Callable[[Delivery], Awaitable[str]]


class ConsumerMiddleware:
    """Passes both steps through unchanged; a middleware overrides the steps it takes part in."""

    async def handle(self, handling: Handling, call_next: Handle) -> None:
        await call_next(handling)

    async def settle(self, delivery: Delivery, call_next: Settle) -> str:
        """`call_next` returns what became of the delivery (an outcome to count)."""
        return await call_next(delivery)


def chain_handle(middleware: tuple[ConsumerMiddleware, ...], last: Handle) -> Handle:
    step = last
    for layer in reversed(middleware):
        step = _handle_step(layer, step)
    return step


def chain_settle(middleware: tuple[ConsumerMiddleware, ...], last: Settle) -> Settle:
    step = last
    for layer in reversed(middleware):
        step = _settle_step(layer, step)
    return step


def _handle_step(layer: ConsumerMiddleware, call_next: Handle) -> Handle:
    async def step(handling: Handling) -> None:
        await layer.handle(handling, call_next)

    return step


def _settle_step(layer: ConsumerMiddleware, call_next: Settle) -> Settle:
    async def step(delivery: Delivery) -> str:
        return await layer.settle(delivery, call_next)

    return step


class LogContext(ConsumerMiddleware):
    """Every log line written while a message is handled or settled names the message."""

    async def handle(self, handling: Handling, call_next: Handle) -> None:
        with message_context(handling.envelope):
            await call_next(handling)

    async def settle(self, delivery: Delivery, call_next: Settle) -> str:
        envelope = delivery.result.envelope
        with message_context(envelope) if envelope else nullcontext():
            return await call_next(delivery)


class Tracing(ConsumerMiddleware):
    """A consumer span per handled message, continuing the trace of the event's `traceparent`.

    The event's own `traceparent` is the parent, not the AMQP `traceparent` header aio-pika's
    instrumentation adds when publishing (the context of the publish span): the event's travels
    with it through the outbox, retries and dead-letter replays, and from any publisher. What
    settling publishes (a retry, a dead letter) is in the event's trace too.
    """

    def __init__(self, queue: str) -> None:
        self._queue = queue

    async def handle(self, handling: Handling, call_next: Handle) -> None:
        envelope = handling.envelope
        with continued_span(
            f"{envelope.type} process", traceparent=envelope.traceparent, kind=SpanKind.CONSUMER
        ) as span:
            span.set_attributes(
                {
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": self._queue,
                    "messaging.message.id": str(envelope.id),
                }
            )
            await call_next(handling)

    async def settle(self, delivery: Delivery, call_next: Settle) -> str:
        envelope = delivery.result.envelope
        with in_trace_of(envelope.traceparent if envelope else None):
            return await call_next(delivery)


class Measured(ConsumerMiddleware):
    """Each settled delivery counted by outcome, with its processing time and its event's age
    when a worker took it."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def settle(self, delivery: Delivery, call_next: Settle) -> str:
        settled = await call_next(delivery)
        result = delivery.result
        self._metrics.messages_consumed.labels(result.event_type, settled).inc()
        self._metrics.handler_duration.labels(result.event_type).observe(
            time.perf_counter() - delivery.started
        )
        if result.envelope is not None:
            age = delivery.received_at - result.envelope.time.timestamp()
            self._metrics.event_age.labels(result.event_type).observe(max(age, 0.0))
        return settled
