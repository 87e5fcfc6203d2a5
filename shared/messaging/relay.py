"""The outbox relay: publishes committed events to the broker, at least once, in outbox order.

Guarantees and the failures they defend against:

- Only committed events are published: the relay reads the outbox like any other reader, so a
  rolled-back transaction's rows are never seen.
- A row's mark as published commits only after the broker confirmed every event of its batch
  (publisher confirms). A batch is claimed and marked in one statement, the events published,
  and the transaction commits once all are confirmed; if any is not, or the process dies
  first, it rolls back and the whole batch is published again with the same CloudEvent `id`s.
  Consumers are idempotent on that id, so the duplicates have no effect.
- Replicas do not publish the same row twice in the normal case: the claim takes the rows with
  `FOR UPDATE SKIP LOCKED` and their locks are held until the transaction ends.
- Low latency without busy polling: the committing transaction sends `NOTIFY outbox` and the
  relay wakes on it. A notification can be missed (the listening connection was down), so the
  relay also polls on a timer: nothing is ever stranded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.sql import func

from shared.messaging.binding import structured_message
from shared.messaging.outbox import NOTIFY_CHANNEL
from shared.observability.metrics import Metrics
from shared.observability.tracing import in_trace_of, publishes_traced, untraced
from shared.persistence.database import Database, dsn
from shared.persistence.statements import Statement

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


class OutboxRelay:
    def __init__(
        self,
        *,
        database: Database,
        outbox: Table,
        amqp: AbstractConnection,
        exchange: str,
        metrics: Metrics,
        batch_size: int,
        poll_seconds: float,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._amqp = amqp
        self._exchange_name = exchange
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        # Claim and mark in one statement, built once; the mark commits only after the confirms.
        pending = (
            select(outbox.c.seq)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
        self._claim = Statement(
            update(outbox)
            .where(outbox.c.seq.in_(pending.scalar_subquery()))
            .values(published_at=func.now())
            .returning(outbox.c.seq, outbox.c.id, outbox.c.type, outbox.c.body)
        )
        self._backlog = Statement(
            select(
                func.count().label("count"), func.min(outbox.c.created_at).label("oldest")
            ).where(outbox.c.published_at.is_(None))
        )

    async def run(self) -> None:
        """Publish on every notification, every poll tick, and after errors, until stopped.

        Untraced but for each publish, which is a span in the trace of the event it carries."""
        with untraced():
            await self._run()

    async def _run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="outbox-listener")
        failures = 0
        measured_at = -float("inf")
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    await self.publish_pending()
                    # At most once per poll interval: under load every commit wakes the relay,
                    # and a count per wake-up would cost as much as the publishing.
                    if time.monotonic() - measured_at >= self._poll_seconds:
                        await self._measure_backlog()
                        measured_at = time.monotonic()
                    failures = 0
                except Exception as error:
                    delay = _backoff(failures)
                    failures += 1
                    # The traceback once per outage; then one line per retry.
                    log.warning(
                        "outbox relay failed (attempt %d), retrying in %.1fs: %r",
                        failures,
                        delay,
                        error,
                        exc_info=failures == 1,
                    )
                    await _wait(self._stopping, delay)
                    continue
                await _wait(self._wake, self._poll_seconds)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    def stop(self) -> None:
        """Ask `run` to return once the batch in flight is published and marked."""
        self._stopping.set()
        self._wake.set()

    async def publish_pending(self) -> int:
        """Drain the outbox batch by batch; return how many events were confirmed."""
        total = 0
        while not self._stopping.is_set():
            published = await self._publish_batch()
            total += published
            if published < self._batch_size:
                break
        return total

    async def _publish_batch(self) -> int:
        exchange = await self._get_exchange()
        async with self._database.transaction() as connection:
            claimed = await self._claim.fetch(connection, limit=self._batch_size)
            if not claimed:
                return 0
            rows = sorted(claimed, key=lambda row: row["seq"])
            # Pipelined: all messages of the batch are in flight at once, each awaiting its own
            # confirm, in outbox order.
            started = time.perf_counter()
            traced = publishes_traced()
            results = await asyncio.gather(
                *(_publish(exchange, row, traced=traced) for row in rows), return_exceptions=True
            )
            self._metrics.relay_confirm_duration.observe(time.perf_counter() - started)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                # The next attempt gets a new channel. RabbitMQ (3.10) can go on refusing
                # everything a channel publishes to a quorum queue once that channel's first
                # publish met the queue between two leaders (its old leader's node had just
                # died): every publish nacked for as long as that node stays down, while a new
                # channel is served at once.
                self._exchange = None
                raise RuntimeError(
                    f"{len(failures)} of {len(rows)} outbox events were not confirmed by the "
                    "broker; the batch stays unpublished"
                ) from failures[0]
        for row in rows:
            self._metrics.events_published.labels(row["type"]).inc()
        return len(rows)

    async def _measure_backlog(self) -> None:
        """Backlog gauges: what is still unpublished after this pass, and how old the oldest is."""
        async with self._database.connection() as connection:
            backlog = await self._backlog.fetchrow(connection)
        assert backlog is not None
        count, oldest = backlog["count"], backlog["oldest"]
        self._metrics.outbox_unpublished.set(count)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        self._metrics.outbox_oldest_age.set(max(age, 0.0))

    async def _get_exchange(self) -> AbstractExchange:
        """The exchange on the relay's channel: a new channel after any failed batch."""
        if self._exchange is None or self._channel is None or self._channel.is_closed:
            if self._channel is not None:
                # Close the old channel explicitly: a robust connection would otherwise keep
                # restoring it, one more channel per failure.
                with contextlib.suppress(Exception):
                    await self._channel.close()
            self._channel = await self._amqp.channel(publisher_confirms=True)
            self._exchange = await self._channel.get_exchange(self._exchange_name, ensure=False)
        return self._exchange

    async def _listen(self) -> None:
        """Keep a LISTEN connection open; reconnect with backoff whenever it drops.

        Notifications are not replicated: after a failover the promoted standby knows nothing
        of the old primary's listeners, and nothing committed while we were not listening
        notified us. So every new connection LISTENs again and wakes the relay once."""
        failures = 0
        while True:
            try:
                await self._listen_until_lost()
            except Exception as error:
                # Refused, timed out, no server of a multi-host URL taking writes yet (in the
                # middle of a failover), or lost while subscribing: all worth another try.
                delay = _backoff(failures)
                failures += 1
                log.warning("outbox listener cannot connect (%r), retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
            else:
                failures = 0
                log.warning("outbox listener connection lost, reconnecting")

    async def _listen_until_lost(self) -> None:
        # A connection of its own, never the pool's: LISTEN belongs to a session.
        connection = await asyncpg.connect(dsn(self._database.url))
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        try:
            await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
            # Anything committed while we were not listening is picked up by this wake-up.
            self._wake.set()
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)

    def _on_notify(self, *_: Any) -> None:
        self._wake.set()


def _backoff(failures: int) -> float:
    """Delay before the next attempt after `failures` consecutive failures."""
    return RETRY_DELAY_SECONDS[min(failures, len(RETRY_DELAY_SECONDS) - 1)]


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)


async def _publish(exchange: AbstractExchange, row: asyncpg.Record, *, traced: bool) -> object:
    """Publish one outbox row; where publishes are traced, as a span of its event's trace (the
    body is read for its `traceparent` only then)."""
    body: bytes = row["body"]
    message = structured_message(event_id=row["id"], event_type=row["type"], body=body)
    if not traced:
        return await exchange.publish(message, routing_key=row["type"])
    with in_trace_of(json.loads(body).get("traceparent")):
        return await exchange.publish(message, routing_key=row["type"])
