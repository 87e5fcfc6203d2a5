"""An event tap: a copy of every event published on `events` while a test runs.

The tap is `python -m broker tail` held by a test (`broker.tail.watch`): a server-named,
exclusive, auto-deleted queue of its own bound to `events`, taken without acknowledgement. The
services never notice it, and the broker deletes the queue with the tap's connection. Each message
is read as the tail reads it (`broker.tail.read`): the CloudEvent in the JSON format whichever
content mode it came in, with the reason the consumers would dead-letter it, if they would.

Entering the tap returns once its queue is bound, so every event published after that is
recorded, in the order the broker delivered them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any

from broker.tail import Seen, watch
from shared.testing.waiting import DEFAULT_TIMEOUT_SECONDS, eventually

Event = dict[str, Any]
"""A CloudEvent in the JSON format: `event["type"]`, `event["data"]["order_id"]`, ..."""

_LISTED_EVENTS = 20


class EventTap:
    """What is published on `events` matching `pattern` (a topic pattern: `#`, `order.*`)."""

    def __init__(self, amqp_url: str, pattern: str = "#") -> None:
        self.amqp_url = amqp_url
        self.pattern = pattern
        self.seen: list[Seen] = []
        """Every message, CloudEvent or not, with the reason a consumer would refuse it."""
        self._stop = asyncio.Event()
        self._watching: asyncio.Task[None] | None = None

    @property
    def events(self) -> list[Event]:
        """The CloudEvents recorded so far, in arrival order."""
        return [seen.event for seen in self.seen if seen.event is not None]

    def matching(
        self, event_type: str | None = None, where: Callable[[Event], bool] | None = None
    ) -> list[Event]:
        """The events recorded so far of `event_type` (any, if None) for which `where` holds."""
        return [
            event
            for event in self.events
            if (event_type is None or event.get("type") == event_type)
            and (where is None or where(event))
        ]

    async def wait_for(
        self,
        event_type: str | None = None,
        *,
        where: Callable[[Event], bool] | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> Event:
        """The first event of `event_type` for which `where` holds, recorded already or when it
        comes; `AssertionError` listing what was recorded if none has after `timeout` seconds."""

        async def found() -> Event:
            self._raise_if_lost()
            chosen = self.matching(event_type, where)
            if not chosen:
                raise AssertionError(self._recorded())
            return chosen[0]

        wanted = f"an event of type {event_type}" if event_type else "an event"
        condition = " matching the condition" if where is not None else ""
        return await eventually(found, timeout=timeout, what=f"{wanted}{condition}")

    async def __aenter__(self) -> EventTap:
        ready = asyncio.Event()
        self._watching = asyncio.create_task(
            watch(
                self.amqp_url,
                self.pattern,
                on_message=self.seen.append,
                on_ready=lambda _queue: ready.set(),
                stop=self._stop,
            )
        )
        bound = asyncio.create_task(ready.wait())
        await asyncio.wait({bound, self._watching}, return_when=asyncio.FIRST_COMPLETED)
        if not bound.done():
            bound.cancel()
            self._watching.result()  # raises why it could not start
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._watching is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching

    def _raise_if_lost(self) -> None:
        if self._watching is not None and self._watching.done():
            self._watching.result()
            raise RuntimeError("the event tap has stopped")

    def _recorded(self) -> str:
        if not self.seen:
            return "no event was recorded"
        listed = [
            f"{seen.event.get('type')} (subject {seen.event.get('subject')})"
            if seen.event is not None
            else f"{seen.routing_key}: not a CloudEvent"
            for seen in self.seen[-_LISTED_EVENTS:]
        ]
        earlier = len(self.seen) - len(listed)
        more = f" (and {earlier} before them)" if earlier else ""
        return f"recorded {len(self.seen)}, the last: {', '.join(listed)}{more}"
