"""The consumer's middleware chain (`shared.messaging.middleware`): each step passes through the
middleware in order, the first outermost, and a middleware takes part only in the steps it
overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from shared.messaging.envelope import CloudEvent
from shared.messaging.middleware import (
    ConsumerMiddleware,
    Delivery,
    Handle,
    Handling,
    Outcome,
    Result,
    Settle,
    chain_handle,
    chain_settle,
)


class Recording(ConsumerMiddleware):
    def __init__(self, name: str, calls: list[str]) -> None:
        self._name = name
        self._calls = calls

    async def handle(self, handling: Handling, call_next: Handle) -> None:
        self._calls.append(f"{self._name} before")
        await call_next(handling)
        self._calls.append(f"{self._name} after")


class Relabelling(ConsumerMiddleware):
    async def settle(self, delivery: Delivery, call_next: Settle) -> str:
        return f"seen {await call_next(delivery)}"


def envelope() -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        datacontenttype="application/json",
        id=uuid4(),
        source="/order_svc",
        type="order.created",
        subject=str(uuid4()),
        time=datetime.now(UTC),
        data={},
        aggregateversion=1,
    )


def delivery() -> Delivery:
    message: Any = object()
    return Delivery(message, Result(Outcome.APPLIED), received_at=0.0, started=0.0)


async def test_the_first_middleware_wraps_the_others_around_the_handler() -> None:
    calls: list[str] = []

    async def run() -> None:
        calls.append("handler")

    async def last(handling: Handling) -> None:
        await handling.run()

    handle = chain_handle((Recording("outer", calls), Recording("inner", calls)), last)
    await handle(Handling(envelope=envelope(), run=run))

    assert calls == ["outer before", "inner before", "handler", "inner after", "outer after"]


async def test_a_middleware_that_only_handles_passes_settling_through() -> None:
    async def route(_: Delivery) -> str:
        return "applied"

    settle = chain_settle((Recording("only handles", []), Relabelling()), route)

    assert await settle(delivery()) == "seen applied"
