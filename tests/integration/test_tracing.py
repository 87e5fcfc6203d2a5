"""One trace from `POST /orders` through user_svc's reservation to order_svc's confirmation.

Both services run in this process (HTTP through ASGI, consumers through `handle`, or a real
relay and consumer on a real broker) on their own real databases, with an in-memory span
exporter standing in for a collector, and asyncpg and aio-pika instrumented as a service
process instruments them. Where no broker is used, the events travel between the services
exactly as the relay would carry them, as the CloudEvent bodies in the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from uuid import UUID

import aio_pika
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Table, bindparam, select

from broker.topology import TOPOLOGY, declare
from order_svc import app as order_app
from order_svc import models as order_models
from order_svc.settings import OrderSettings
from shared.messaging.consumer import EventConsumer
from shared.messaging.middleware import Outcome
from shared.messaging.relay import OutboxRelay
from shared.observability.metrics import Metrics
from shared.observability.tracing import instrument_libraries
from shared.persistence.database import Database, database_name
from shared.persistence.statements import Statement
from shared.persistence.unit_of_work import UnitOfWork
from shared.runtime.composition import ServiceSpec
from shared.web.tokens import SigningKey
from tests.support.waiting import eventually
from user_svc import app as user_app
from user_svc import handlers as user_handlers
from user_svc import models as user_models
from user_svc.domain import User
from user_svc.passwords import Passwords
from user_svc.uow import unit_of_work as user_unit_of_work

pytestmark = pytest.mark.integration

SIGNING_KEY = SigningKey.from_secret("tracing-test-secret-0123456789abcdefgh")
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> Iterator[None]:
    """The global provider can be set once per process; this module's exporter records, and
    the libraries are traced while its tests run."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    instrument_libraries()
    yield
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    AioPikaInstrumentor().uninstrument()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    keys = tmp_path / "token-keys.pem"
    keys.write_bytes(SIGNING_KEY.public_pem)
    return keys


@pytest.fixture
async def order_api(order_db: str, keys_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    """order_svc's HTTP API in this process; it takes tokens signed with `SIGNING_KEY`."""
    api = order_app.create_app(
        OrderSettings(ORDER_SVC_DATABASE_URL=order_db, JWT_PUBLIC_KEYS_FILE=keys_file)  # type: ignore[call-arg]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://order_svc"
    ) as client:
        yield client
    await api.state.database.close()


async def registered_user(database: Database) -> User:
    return await user_handlers.register_user(
        user_handlers.RegisterUser(
            email="trace@example.com", name="Ada", password="correct horse", credit_limit=1_000
        ),
        user_unit_of_work(database),
        Passwords(),
    )


async def place_order(client: httpx.AsyncClient, user_id: UUID) -> str:
    response = await client.post(
        "/orders",
        json={"items": [{"sku": "A", "quantity": 1, "unit_price": 100}]},
        headers={"Authorization": f"Bearer {SIGNING_KEY.issue(user_id, ttl_seconds=60)}"},
    )
    assert response.status_code == 202
    return str(response.json()["id"])


async def outbox_body(database: Database, table: Table, event_type: str) -> bytes:
    query = select(table.c.body).where(table.c.type == bindparam("type"))
    async with database.connection() as connection:
        body = await Statement(query).fetchval(connection, type=event_type)
    assert body is not None, f"no {event_type} in the outbox"
    return bytes(body)


async def test_one_trace_runs_from_the_request_through_both_services(
    user_database: Database, order_database: Database, order_api: httpx.AsyncClient
) -> None:
    user = await registered_user(user_database)
    EXPORTER.clear()

    await place_order(order_api, user.id)
    created = await outbox_body(order_database, order_models.outbox, "order.created")
    user_consumer = consumer_for(user_app.SPEC, user_database)
    assert (await user_consumer.handle(created)).outcome is Outcome.APPLIED
    reserved = await outbox_body(user_database, user_models.outbox, "user.credit_reserved")
    order_consumer = consumer_for(order_app.SPEC, order_database)
    assert (await order_consumer.handle(reserved)).outcome is Outcome.APPLIED

    spans = EXPORTER.get_finished_spans()
    [request] = [s for s in spans if s.name == "POST /orders"]
    [reservation] = [s for s in spans if s.name == "order.created process"]
    [confirmation] = [s for s in spans if s.name == "user.credit_reserved process"]
    assert len({s.context.trace_id for s in [request, reservation, confirmation]}) == 1
    assert parent_of(reservation) == request.context.span_id
    assert parent_of(confirmation) == reservation.context.span_id
    assert request.kind is trace.SpanKind.SERVER
    assert reservation.kind is trace.SpanKind.CONSUMER


async def test_a_request_that_reads_an_order_has_its_statements_as_child_spans(
    user_database: Database, order_api: httpx.AsyncClient, order_db: str
) -> None:
    user = await registered_user(user_database)
    order_id = await place_order(order_api, user.id)
    EXPORTER.clear()

    response = await order_api.get(
        f"/orders/{order_id}",
        headers={"Authorization": f"Bearer {SIGNING_KEY.issue(user.id, ttl_seconds=60)}"},
    )

    assert response.status_code == 200
    spans = EXPORTER.get_finished_spans()
    [request] = [s for s in spans if s.name == "GET /orders/{order_id}"]
    statements = children_of(request, spans)
    assert statements, "the read ran no traced statement"
    for statement in statements:
        attributes = statement.attributes or {}
        assert statement.kind is trace.SpanKind.CLIENT
        assert attributes["db.system"] == "postgresql"
        assert str(attributes["db.statement"]).startswith("SELECT")
        assert attributes["db.name"] == database_name(order_db)


async def test_a_consumed_message_has_its_statements_as_child_spans(
    user_database: Database, order_database: Database, order_api: httpx.AsyncClient
) -> None:
    user = await registered_user(user_database)
    await place_order(order_api, user.id)
    created = await outbox_body(order_database, order_models.outbox, "order.created")
    EXPORTER.clear()

    assert (
        await consumer_for(user_app.SPEC, user_database).handle(created)
    ).outcome is Outcome.APPLIED

    spans = EXPORTER.get_finished_spans()
    [reservation] = [s for s in spans if s.name == "order.created process"]
    statements = [
        str((s.attributes or {})["db.statement"]) for s in children_of(reservation, spans)
    ]
    # The inbox claim, the handler's reads and writes, the outbox insert and the commit.
    assert any(sql.startswith("INSERT INTO inbox") for sql in statements)
    assert any(sql.startswith("INSERT INTO outbox") for sql in statements)
    assert "COMMIT;" in statements
    assert all(
        (s.attributes or {}).get("db.system") == "postgresql"
        for s in children_of(reservation, spans)
    )


async def test_the_trace_crosses_the_outbox_and_the_broker_to_the_other_service(
    user_database: Database,
    order_database: Database,
    order_api: httpx.AsyncClient,
    amqp_url: str,
) -> None:
    user = await registered_user(user_database)
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        await declare(await connection.channel(), TOPOLOGY)
        relay = OutboxRelay(
            database=order_database,
            outbox=order_models.outbox,
            amqp=connection,
            exchange=TOPOLOGY.exchange.name,
            metrics=Metrics(),
            batch_size=100,
            poll_seconds=0.2,
        )
        user_consumer = consumer_for(user_app.SPEC, user_database)
        await user_consumer.start(connection)
        relaying = asyncio.create_task(relay.run())
        EXPORTER.clear()
        try:
            await place_order(order_api, user.id)

            async def reserved() -> list[ReadableSpan]:
                return [
                    s for s in EXPORTER.get_finished_spans() if s.name == "order.created process"
                ]

            await eventually(reserved, what="user_svc to process order.created")
        finally:
            relay.stop()
            await relaying
            await user_consumer.stop()

    spans = EXPORTER.get_finished_spans()
    [request] = [s for s in spans if s.name == "POST /orders"]
    [publish] = [s for s in spans if s.kind is trace.SpanKind.PRODUCER]
    [receive] = [s for s in spans if s.name.endswith(" receive")]
    [process] = [s for s in spans if s.name == "order.created process"]
    assert len({s.context.trace_id for s in (request, publish, receive, process)}) == 1
    # The relay publishes in the trace of the request that wrote the event; the broker delivery
    # continues the publish's AMQP header; the processing continues the event's `traceparent`.
    assert parent_of(publish) == request.context.span_id
    assert (publish.attributes or {})[
        "messaging.destination"
    ] == f"{TOPOLOGY.exchange.name},order.created"
    assert parent_of(receive) == publish.context.span_id
    assert receive.kind is trace.SpanKind.CONSUMER
    assert parent_of(process) == request.context.span_id
    assert children_of(process, spans)
    # The relay's polling and claims belong to no request: they start no trace of their own.
    assert [s.name for s in spans if s.parent is None] == ["POST /orders"]


async def test_a_request_continues_the_callers_trace(order_db: str) -> None:
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    api = order_app.create_app(OrderSettings(ORDER_SVC_DATABASE_URL=order_db))  # type: ignore[call-arg]
    EXPORTER.clear()

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://order_svc"
    ) as client:
        response = await client.get(
            "/healthz", headers={"traceparent": f"00-{trace_id}-{parent_id}-01"}
        )
    await api.state.database.close()

    assert response.status_code == 200
    spans = [s for s in EXPORTER.get_finished_spans() if s.name == "GET /healthz"]
    assert {format(s.context.trace_id, "032x") for s in spans} == {trace_id}
    assert any(s.kind is trace.SpanKind.SERVER for s in spans)
    assert any((s.attributes or {}).get("http.response.status_code") == 200 for s in spans)


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def children_of(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if parent_of(s) == span.context.span_id]


def consumer_for(spec: ServiceSpec, database: Database) -> EventConsumer[UnitOfWork]:
    return EventConsumer(
        queue=spec.queue,
        handlers=spec.handlers,
        unit_of_work=lambda: spec.unit_of_work(database),
        inbox_table=spec.inbox,
        metrics=Metrics(),
        prefetch=1,
        max_attempts=1,
    )
