"""What a service process runs besides answering HTTP, as parts its role picks from.

Each part starts, stops, and names the readiness checks it brings, so a process's `/readyz`
checks exactly what that process runs: the database it always needs, the token keys of an HTTP
API, the broker connection of a relay or a consumer, a consumer still subscribed.

A `Runtime` starts its parts in order and stops them in reverse. Composed as the roles compose them
(`shared.runtime.composition`), shutdown stops the consumer first (in-flight messages finish and are
acked), then housekeeping, then the relay (its batch in flight is published and marked), and closes
the connections last. Start-up waits for the broker with backoff instead of crashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import Table
from tenacity import AsyncRetrying, before_sleep_log, stop_after_delay, wait_exponential

from broker.ownership import declare_for_service
from broker.topology import TOPOLOGY, Queue
from shared.messaging.amqp import with_heartbeat
from shared.messaging.consumer import EventConsumer, Handler
from shared.messaging.housekeeping import Housekeeper
from shared.messaging.relay import OutboxRelay
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from shared.persistence.unit_of_work import UnitOfWork
from shared.settings import ServiceSettings
from shared.web.ops import Check
from shared.web.tokens import KeySet

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
# A broker that accepts TCP while still booting can leave a handshake hanging: give up and retry.
CONNECT_TIMEOUT_SECONDS = 10.0
RELAY_STOP_SECONDS = 10.0

UnitOfWorkFactory = Callable[[Database], UnitOfWork]


class Part(Protocol):
    @property
    def checks(self) -> Mapping[str, Check]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Runtime:
    def __init__(self, parts: Sequence[Part]) -> None:
        self._parts = parts
        self._started: list[Part] = []

    @property
    def checks(self) -> dict[str, Check]:
        return {name: check for part in self._parts for name, check in part.checks.items()}

    async def start(self) -> None:
        """Start every part in order; if one fails, stop those already started and re-raise."""
        for part in self._parts:
            try:
                await part.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(part)

    async def stop(self) -> None:
        while self._started:
            await self._started.pop().stop()


class DatabasePool:
    """The service's connection pool: every role needs its database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @property
    def checks(self) -> Mapping[str, Check]:
        return {"database": self.database.ping}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.database.close()


class TokenKeys:
    """The keys an HTTP API verifies bearer tokens with, loaded at start."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    @property
    def checks(self) -> Mapping[str, Check]:
        return {"token_keys": self.keys.ready}

    async def start(self) -> None:
        await self.keys.load()

    async def stop(self) -> None:
        return None


class Broker:
    """One robust connection, with the service's own queue and its topology declared."""

    def __init__(self, url: str, queue: Queue) -> None:
        self._url = url
        self._queue = queue
        self._connection: AbstractRobustConnection | None = None

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("the broker connection is used before it was started")
        return self._connection

    @property
    def checks(self) -> Mapping[str, Check]:
        return {"broker": self._connected}

    async def start(self) -> None:
        self._connection = await _connect(self._url)
        await declare_for_service(self._connection, self._queue)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _connected(self) -> bool:
        # A robust connection is never "closed" while it reconnects; `connected` says if it is up.
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()


class Relay:
    """The outbox relay, publishing over the broker connection."""

    def __init__(
        self,
        *,
        name: str,
        database: Database,
        broker: Broker,
        outbox: Table,
        settings: ServiceSettings,
        metrics: Metrics,
    ) -> None:
        self._name = name
        self._database = database
        self._broker = broker
        self._outbox = outbox
        self._settings = settings
        self._metrics = metrics
        self._relay: OutboxRelay | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def checks(self) -> Mapping[str, Check]:
        return {}

    async def start(self) -> None:
        self._relay = OutboxRelay(
            database=self._database,
            outbox=self._outbox,
            amqp=self._broker.connection,
            exchange=TOPOLOGY.exchange.name,
            metrics=self._metrics,
            batch_size=self._settings.relay_batch_size,
            poll_seconds=self._settings.relay_poll_seconds,
        )
        self._task = asyncio.create_task(self._relay.run(), name=f"{self._name}-relay")

    async def stop(self) -> None:
        if self._relay is None or self._task is None:
            return
        self._relay.stop()
        try:
            await asyncio.wait_for(self._task, RELAY_STOP_SECONDS)
        except TimeoutError:
            log.warning(
                "relay did not finish its batch in %ss; its rows stay unpublished "
                "and will be published again",
                RELAY_STOP_SECONDS,
            )


class Consumer:
    """The service's event consumer on its queue."""

    def __init__(
        self,
        *,
        database: Database,
        broker: Broker,
        queue: Queue,
        handlers: Mapping[str, Handler[Any]],
        unit_of_work: UnitOfWorkFactory,
        inbox: Table,
        settings: ServiceSettings,
        metrics: Metrics,
    ) -> None:
        self._broker = broker
        self._consumer: EventConsumer[Any] = EventConsumer(
            queue=queue,
            handlers=handlers,
            unit_of_work=lambda: unit_of_work(database),
            inbox_table=inbox,
            metrics=metrics,
            prefetch=settings.consumer_prefetch,
            batch_size=settings.consumer_batch_size,
            max_attempts=settings.handler_max_attempts,
            max_message_bytes=settings.max_message_bytes,
        )

    @property
    def checks(self) -> Mapping[str, Check]:
        return {"consumer": self._running}

    async def start(self) -> None:
        await self._consumer.start(self._broker.connection)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _running(self) -> bool:
        return self._consumer.running


class Housekeeping:
    """The periodic sweep of published outbox rows and old inbox rows."""

    def __init__(
        self,
        *,
        name: str,
        database: Database,
        outbox: Table,
        inbox: Table,
        settings: ServiceSettings,
    ) -> None:
        self._name = name
        self._housekeeper = Housekeeper(
            database=database,
            outbox=outbox,
            inbox=inbox,
            outbox_retention_seconds=settings.outbox_retention_seconds,
            inbox_retention_seconds=settings.inbox_retention_seconds,
            interval_seconds=settings.housekeeping_interval_seconds,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def checks(self) -> Mapping[str, Check]:
        return {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._housekeeper.run(), name=f"{self._name}-housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _connect(url: str) -> AbstractRobustConnection:
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(120),
        wait=wait_exponential(multiplier=0.2, max=5),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            return await aio_pika.connect_robust(
                with_heartbeat(url),
                reconnect_interval=RECONNECT_SECONDS,
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
    raise AssertionError("unreachable")
