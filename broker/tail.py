"""Watching the event stream (`python -m broker tail`): a temporary queue of one's own on `events`.

The queue is server-named, exclusive and auto-deleted: only the tail's connection can read it, and
the broker deletes it when that connection closes, however the process ends (Ctrl-C, a kill, a
lost network). A tail leaves nothing behind, and the services never notice it: they consume from
their own queues, and this one gets copies, taken without acknowledgement.

Each message is shown as the CloudEvent it is, in the JSON format, whichever content mode it came
in (`shared.messaging.binding`). One that the consumers would refuse is shown all the same, with
the reason they would dead-letter it for; one that is no CloudEvent at all, with its routing key
and the start of its body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage

from broker.topology import EVENTS
from shared.messaging.binding import as_structured
from shared.messaging.envelope import DATA_CONTENT_TYPE, InvalidEvent, decode

PREVIEW_BYTES = 200
# Shown on the first line of an event (or, `specversion`, always the same).
_HEADLINE = frozenset({"specversion", "type", "subject", "aggregateversion", "time", "data"})


class TailFailed(Exception):
    """The tail could not start, or lost the broker."""


@dataclass(frozen=True)
class Seen:
    """One message as the tail saw it."""

    routing_key: str
    event: dict[str, Any] | None
    """The CloudEvent in the JSON format; None if the message is none."""
    problem: str | None
    """Why a consumer would dead-letter it, if it would."""
    body: bytes


def read(message: AbstractIncomingMessage) -> Seen:
    routing_key = message.routing_key or ""
    try:
        structured = as_structured(message.body, message.content_type, message.headers)
    except InvalidEvent as error:
        return Seen(routing_key, None, error.reason, message.body)
    problem = None
    try:
        decode(structured)
    except InvalidEvent as error:
        problem = error.reason
    try:
        event = json.loads(structured)
    except ValueError:
        event = None
    # What `decode` refused as no JSON object has its problem told: it is no CloudEvent.
    return Seen(routing_key, event if isinstance(event, dict) else None, problem, message.body)


def pretty(seen: Seen) -> str:
    """A few lines for a person: what happened to what, its identity, its data."""
    if seen.event is None:
        preview = seen.body[:PREVIEW_BYTES]
        more = f" ... ({len(seen.body)} bytes)" if len(seen.body) > len(preview) else ""
        return f"{seen.routing_key}  not a CloudEvent: {seen.problem}\n  {preview!r}{more}"
    event = seen.event
    headline = [
        str(event.get("type")),
        f"v{event.get('aggregateversion')}",
        f"subject {event.get('subject')}",
        f"at {event.get('time')}",
    ]
    if seen.routing_key != event.get("type"):
        headline.append(f"(routing key {seen.routing_key})")
    details = [
        f"{name} {value}"
        for name, value in event.items()
        if name not in _HEADLINE and not (name == "datacontenttype" and value == DATA_CONTENT_TYPE)
    ]
    lines = ["  ".join(headline), "  " + "  ".join(details), f"  {_compact(event.get('data'))}"]
    if seen.problem is not None:
        lines.append(f"  ! consumers dead-letter this: {seen.problem}")
    return "\n".join(lines)


def as_json(seen: Seen) -> str | None:
    """The event in the JSON format on one line; None for a message that is no CloudEvent."""
    return None if seen.event is None else _compact(seen.event)


async def watch(
    url: str,
    pattern: str,
    *,
    on_message: Callable[[Seen], None],
    on_ready: Callable[[str], None],
    stop: asyncio.Event,
) -> None:
    """Show every event matching `pattern` until `stop` is set; the queue goes with the tail."""
    connection = await aio_pika.connect(url)
    lost = asyncio.Event()
    connection.close_callbacks.add(lambda *_: lost.set())
    async with connection:
        channel = await connection.channel()
        try:
            exchange = await channel.get_exchange(EVENTS.name, ensure=True)
        except aiormq.exceptions.ChannelNotFoundEntity as error:
            raise TailFailed(
                f"the broker has no {EVENTS.name!r} exchange: declare the topology first "
                "(python -m broker declare)"
            ) from error
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=pattern)

        async def deliver(message: AbstractIncomingMessage) -> None:
            on_message(read(message))

        await queue.consume(deliver, no_ack=True)
        on_ready(queue.name)
        await _first(stop, lost)
        if lost.is_set() and not stop.is_set():
            raise TailFailed("lost the connection to the broker")


async def _first(*events: asyncio.Event) -> None:
    waiting = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
