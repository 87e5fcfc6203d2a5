"""The composition root both services share: one process = HTTP API + outbox relay + consumer.

A service describes itself with a `ServiceSpec` (its name, tables, queue, handlers, unit of work,
routers); `create_app` wires it to settings, and `serve` prepares the database and runs it.
Nothing is created at import time, so tests build as many differently configured apps as they
like. Start-up waits for the broker with backoff instead of crashing, and shutdown stops the
consumer first (in-flight messages finish and are acked), then the relay, then the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

import aio_pika
import uvicorn
from aio_pika.abc import AbstractRobustConnection
from fastapi import APIRouter, FastAPI
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, before_sleep_log, stop_after_delay, wait_exponential

from broker.ownership import declare_for_service
from broker.topology import TOPOLOGY, Queue
from shared.amqp import with_heartbeat
from shared.auth import KeySet, TokenVerifier
from shared.consumer import EventConsumer, Handler
from shared.db import asyncpg_dsn, create_engine, ensure_database, migrate
from shared.envelope import CloudEvent
from shared.housekeeping import Housekeeper
from shared.http import (
    document_problems,
    install_observability_middleware,
    install_problem_handlers,
    install_request_size_limit,
    ops_router,
)
from shared.logs import configure_logging
from shared.metrics import Metrics
from shared.relay import OutboxRelay
from shared.settings import ServiceSettings
from shared.tracing import configure_tracing
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)

RECONNECT_SECONDS = 1.0
# A broker that accepts TCP while still booting can leave a handshake hanging: give up and retry.
CONNECT_TIMEOUT_SECONDS = 10.0
RELAY_STOP_SECONDS = 10.0
SHUTDOWN_DEADLINE_SECONDS = 30.0

UnitOfWorkFactory = Callable[[AsyncEngine, CloudEvent | None], UnitOfWork]


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    name: str
    outbox: Table
    inbox: Table
    queue: Queue
    handlers: Mapping[str, Handler[Any]]
    unit_of_work: UnitOfWorkFactory
    routers: Sequence[APIRouter]


class Runtime:
    """The background half of a service process: broker connection, relay and consumer."""

    def __init__(self, spec: ServiceSpec, settings: ServiceSettings, engine: AsyncEngine) -> None:
        self.spec = spec
        self.settings = settings
        self.engine = engine
        self.metrics = Metrics()
        self.amqp: AbstractRobustConnection | None = None
        self._consumer: EventConsumer[Any] | None = None
        self._relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        settings, spec = self.settings, self.spec
        self.amqp = await _connect(settings.amqp_url)
        await declare_for_service(self.amqp, spec.queue)
        if settings.relay_enabled:
            relay = OutboxRelay(
                engine=self.engine,
                listen_dsn=asyncpg_dsn(settings.database_url),
                outbox=spec.outbox,
                amqp=self.amqp,
                exchange=TOPOLOGY.exchange.name,
                metrics=self.metrics,
                batch_size=settings.relay_batch_size,
                poll_seconds=settings.relay_poll_seconds,
            )
            self._relay = relay
            self._relay_task = asyncio.create_task(relay.run(), name=f"{spec.name}-relay")
        housekeeper = Housekeeper(
            engine=self.engine,
            outbox=spec.outbox,
            inbox=spec.inbox,
            outbox_retention_seconds=settings.outbox_retention_seconds,
            inbox_retention_seconds=settings.inbox_retention_seconds,
            interval_seconds=settings.housekeeping_interval_seconds,
        )
        self._tasks.append(asyncio.create_task(housekeeper.run(), name=f"{spec.name}-housekeeping"))
        if settings.consumers_enabled:
            self._consumer = EventConsumer(
                queue=spec.queue,
                handlers=spec.handlers,
                unit_of_work=lambda cause: spec.unit_of_work(self.engine, cause),
                inbox_table=spec.inbox,
                metrics=self.metrics,
                prefetch=settings.consumer_prefetch,
                batch_size=settings.consumer_batch_size,
                max_attempts=settings.handler_max_attempts,
                max_message_bytes=settings.max_message_bytes,
            )
            await self._consumer.start(self.amqp)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._relay is not None and self._relay_task is not None:
            self._relay.stop()
            try:
                await asyncio.wait_for(self._relay_task, RELAY_STOP_SECONDS)
            except TimeoutError:
                log.warning(
                    "relay did not finish its batch in %ss; its rows stay unpublished "
                    "and will be published again",
                    RELAY_STOP_SECONDS,
                )
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.amqp is not None:
            await self.amqp.close()
        await self.engine.dispose()


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


def create_app(spec: ServiceSpec, settings: ServiceSettings, token_keys: KeySet) -> FastAPI:
    """The service's ASGI app; `token_keys` verify the bearer tokens its routes require."""
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    runtime = Runtime(spec, settings, engine)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await token_keys.load()
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=spec.name, version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.unit_of_work = spec.unit_of_work
    app.state.runtime = runtime
    app.state.token_keys = token_keys
    app.state.tokens = TokenVerifier(token_keys)
    install_problem_handlers(app)
    document_problems(app)
    install_request_size_limit(app, settings.max_request_bytes)
    install_observability_middleware(app, runtime.metrics)
    app.include_router(
        ops_router(engine=engine, amqp=lambda: runtime.amqp, metrics=runtime.metrics)
    )
    for router in spec.routers:
        app.include_router(router)
    return app


async def prepare_database(spec_package: str, database_url: str) -> None:
    await ensure_database(database_url)
    await migrate(spec_package, database_url)


class _Server(uvicorn.Server):
    """uvicorn's server, plus two ways out of a shutdown that hangs: a second SIGTERM or SIGINT
    exits at once, and so does the deadline after the first. A hard exit loses nothing: messages
    are acked only after their commit (the broker redelivers the rest) and outbox rows stay
    unpublished until a relay confirms them."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            log.warning("second %s during shutdown: exiting now", signal.Signals(sig).name)
            os._exit(1)
        super().handle_exit(sig, frame)
        deadline = threading.Timer(SHUTDOWN_DEADLINE_SECONDS, _exit_after_deadline)
        deadline.daemon = True
        deadline.start()


def _exit_after_deadline() -> None:
    log.error("shutdown took longer than %ss: exiting now", SHUTDOWN_DEADLINE_SECONDS)
    os._exit(1)


def serve(settings: S, *, package: str, app: Callable[[S], FastAPI]) -> None:
    """Create and migrate the database, then run the service until SIGINT/SIGTERM."""
    configure_logging(service=package, format=settings.log_format)
    configure_tracing(package)
    asyncio.run(prepare_database(package, settings.database_url))
    config = uvicorn.Config(
        app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
    )
    _Server(config).run()
