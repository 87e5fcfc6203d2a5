"""The composition root both services share: which parts each role runs, wired to settings.

A service describes itself with a `ServiceSpec` (its package, tables, queue, handlers, unit of
work, routers). Every role is a composition of the same parts (`parts_of`): the database, the
token keys of an HTTP API, the broker connection, the outbox relay, housekeeping and the
consumer. `create_app` builds the app of a role that serves the HTTP API (`all`, `api`);
`create_ops_app` the app of a `worker` or `relay`, which serves only `/healthz`, `/readyz` and
`/metrics`; `main` is `python -m <service> [role]`. Nothing is created at import time, so tests
build as many differently configured apps as they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import Table

from broker.topology import Queue
from shared.messaging.consumer import Handler
from shared.observability.logs import configure_logging
from shared.observability.metrics import Metrics
from shared.observability.tracing import configure_tracing
from shared.persistence.database import Database, ensure_database, without_password
from shared.persistence.migrations import migrate
from shared.runtime import roles, server
from shared.runtime.parts import (
    Broker,
    Consumer,
    DatabasePool,
    Housekeeping,
    Part,
    Relay,
    Runtime,
    TokenKeys,
    UnitOfWorkFactory,
)
from shared.runtime.roles import Role
from shared.settings import ServiceSettings
from shared.web.middleware import install_observability_middleware, install_request_size_limit
from shared.web.openapi import JSONObject, document_api, explicit_operation_id
from shared.web.ops import ops_router
from shared.web.problems import install_problem_handlers
from shared.web.route_limits import install_rate_limits, never_limited_paths
from shared.web.tokens import KeySet, TokenVerifier

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    name: str  # also the package, which holds the service's migrations
    outbox: Table
    inbox: Table
    queue: Queue
    handlers: Mapping[str, Handler[Any]]
    unit_of_work: UnitOfWorkFactory
    routers: Sequence[APIRouter]
    # Parts of the service's own that its workers run beside the consumer (`all`, `worker`),
    # given the database and the process's metrics registry: measurements of its own state.
    worker_parts: Callable[[Database, CollectorRegistry], Sequence[Part]] = lambda *_: ()


def parts_of(
    role: Role,
    spec: ServiceSpec,
    settings: ServiceSettings,
    *,
    database: Database,
    metrics: Metrics,
    token_keys: KeySet | None,
) -> list[Part]:
    """What each role runs, in the order it starts (it stops in reverse)."""
    pool = DatabasePool(database)
    broker = Broker(settings.amqp_url, spec.queue)

    def keys() -> TokenKeys:
        if token_keys is None:
            raise ValueError(f"the {role} role serves the HTTP API: it needs token keys")
        return TokenKeys(token_keys)

    def relay() -> Relay:
        return Relay(
            name=spec.name,
            database=database,
            broker=broker,
            outbox=spec.outbox,
            settings=settings,
            metrics=metrics,
        )

    def consumer_and_housekeeping() -> list[Part]:
        return [
            Housekeeping(
                name=spec.name,
                database=database,
                outbox=spec.outbox,
                inbox=spec.inbox,
                settings=settings,
            ),
            Consumer(
                database=database,
                broker=broker,
                queue=spec.queue,
                handlers=spec.handlers,
                unit_of_work=spec.unit_of_work,
                inbox=spec.inbox,
                settings=settings,
                metrics=metrics,
            ),
            *spec.worker_parts(database, metrics.registry),
        ]

    match role:
        case Role.ALL:
            return [pool, keys(), broker, relay(), *consumer_and_housekeeping()]
        case Role.API:
            return [pool, keys()]
        case Role.WORKER:
            return [pool, broker, *consumer_and_housekeeping()]
        case Role.RELAY:
            return [pool, broker, relay()]
        case Role.MIGRATE:
            raise ValueError("the migrate role runs no parts: it migrates and exits")


def create_app(
    spec: ServiceSpec, settings: ServiceSettings, token_keys: KeySet, *, role: Role = Role.ALL
) -> FastAPI:
    """The app of a role that serves the HTTP API; `token_keys` verify the bearer tokens its
    routes require."""
    if not role.serves_api:
        raise ValueError(f"the {role} role serves no HTTP API: use create_ops_app")
    app = _compose(spec, settings, role=role, token_keys=token_keys)
    app.state.unit_of_work = spec.unit_of_work
    app.state.token_keys = token_keys
    app.state.tokens = TokenVerifier(token_keys)
    document_api(app, never_limited=never_limited_paths(app), servers=servers(settings))
    for router in spec.routers:
        app.include_router(router)
    # Inside the observability middleware (added last, outermost), so refusals are counted and
    # traced; after the routers, whose paths `RATE_LIMITS` is checked against.
    install_request_size_limit(app, settings.max_request_bytes)
    install_rate_limits(
        app,
        service=spec.name,
        settings=settings,
        tokens=app.state.tokens,
        metrics=app.state.metrics,
    )
    install_observability_middleware(app, app.state.metrics)
    return app


def servers(settings: ServiceSettings) -> list[JSONObject]:
    """The OpenAPI `servers` of a service: wherever its document was fetched from, and the
    contract's default port on this machine. The same whatever port this process was given, so
    the document it serves is the one committed in catalogue/openapi/."""
    default_port = type(settings).model_fields["port"].default
    return [
        {
            "url": "/",
            "description": "The host this document was fetched from: the service itself, or a "
            "gateway that routes these paths to it (the Kubernetes Ingress).",
        },
        {
            "url": f"http://127.0.0.1:{default_port}",
            "description": "`make run` or `docker compose up` on this machine, at the contract's "
            "default port.",
        },
    ]


def create_ops_app(spec: ServiceSpec, settings: ServiceSettings, *, role: Role) -> FastAPI:
    """The app of a `worker` or `relay`: its parts, and the operations routes only."""
    if role.serves_api or role not in roles.OPS_PORT_OFFSETS:
        raise ValueError(f"the {role} role has no operations-only app")
    app = _compose(spec, settings, role=role, token_keys=None)
    install_observability_middleware(app, app.state.metrics)
    return app


def _compose(
    spec: ServiceSpec, settings: ServiceSettings, *, role: Role, token_keys: KeySet | None
) -> FastAPI:
    database = Database(settings.database_url, pool_size=settings.database_pool_size)
    metrics = Metrics()
    runtime = Runtime(
        parts_of(role, spec, settings, database=database, metrics=metrics, token_keys=token_keys)
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=spec.name,
        version="1.0.0",
        lifespan=lifespan,
        openapi_url="/openapi.json" if role.serves_api else None,
        # The observability middleware makes each request's one server span (and counts and
        # times it): FastAPI's own would be a second, with spans of its steps under it.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        generate_unique_id_function=explicit_operation_id,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.runtime = runtime
    app.state.metrics = metrics
    install_problem_handlers(app)
    app.include_router(ops_router(checks=runtime.checks, metrics=metrics))
    return app


async def prepare_database(package: str, database_url: str) -> None:
    """Create the database if it is missing and bring it to head (safe for replicas at once)."""
    await ensure_database(database_url)
    await migrate(package, database_url)


def migrate_and_exit(package: str, database_url: str) -> int:
    """The `migrate` role: 0 once the database is at head, 1 (with the reason logged) if not."""
    where = without_password(database_url)
    try:
        asyncio.run(prepare_database(package, database_url))
    except Exception:
        log.exception("migrating %s failed", where)
        return 1
    log.info("database %s is at head", where)
    return 0


def main(
    spec: ServiceSpec,
    settings_type: Callable[[], S],
    create_api: Callable[[S, Role], FastAPI],
) -> None:
    """`python -m <service> [all|api|worker|relay|migrate]`; `create_api` builds the service's
    HTTP app for `all` and `api`."""
    role = roles.parse(sys.argv[1:], service=spec.name)
    settings = settings_type()
    configure_logging(service=spec.name, format=settings.log_format)
    configure_tracing(spec.name)
    if role is Role.MIGRATE:
        sys.exit(migrate_and_exit(spec.name, settings.database_url))
    port = roles.listen_port(role, settings)
    if roles.migrates_on_start(role, settings):
        asyncio.run(prepare_database(spec.name, settings.database_url))
    app = (
        create_api(settings, role) if role.serves_api else create_ops_app(spec, settings, role=role)
    )
    server.run(
        app,
        host=settings.host,
        port=port,
        access_log=settings.access_log,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
