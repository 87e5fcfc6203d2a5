"""One trace from `POST /orders` through user_svc's reservation to order_svc's confirmation.

Both services run in this process (HTTP through ASGI, consumers through `handle`) on their own
real databases, with an in-memory span exporter standing in for a collector; the events travel
between them exactly as the relay would carry them, as the CloudEvent bodies in the outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Table, bindparam, select

from order_svc import app as order_app
from order_svc import models as order_models
from order_svc.settings import OrderSettings
from shared.messaging.consumer import EventConsumer
from shared.messaging.middleware import Outcome
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from shared.persistence.statements import Statement
from shared.persistence.unit_of_work import UnitOfWork
from shared.runtime.composition import ServiceSpec
from shared.web.tokens import SigningKey
from user_svc import app as user_app
from user_svc import handlers as user_handlers
from user_svc import models as user_models
from user_svc.passwords import Passwords
from user_svc.uow import unit_of_work as user_unit_of_work

pytestmark = pytest.mark.integration

SIGNING_KEY = SigningKey.from_secret("tracing-test-secret-0123456789abcdefgh")
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider() -> None:
    """The global provider can be set once per process; this module's exporter records."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


async def outbox_body(database: Database, table: Table, event_type: str) -> bytes:
    query = select(table.c.body).where(table.c.type == bindparam("type"))
    async with database.connection() as connection:
        body = await Statement(query).fetchval(connection, type=event_type)
    assert body is not None, f"no {event_type} in the outbox"
    return bytes(body)


async def test_one_trace_runs_from_the_request_through_both_services(
    user_database: Database, order_database: Database, order_db: str, tmp_path: Path
) -> None:
    user = await user_handlers.register_user(
        user_handlers.RegisterUser(
            email="trace@example.com", name="Ada", password="correct horse", credit_limit=1_000
        ),
        user_unit_of_work(user_database),
        Passwords(),
    )
    keys = tmp_path / "token-keys.pem"
    keys.write_bytes(SIGNING_KEY.public_pem)
    api = order_app.create_app(
        OrderSettings(ORDER_SVC_DATABASE_URL=order_db, JWT_PUBLIC_KEYS_FILE=keys)  # type: ignore[call-arg]
    )
    EXPORTER.clear()

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://order_svc"
    ) as client:
        response = await client.post(
            "/orders",
            json={"items": [{"sku": "A", "quantity": 1, "unit_price": 100}]},
            headers={"Authorization": f"Bearer {SIGNING_KEY.issue(user.id, ttl_seconds=60)}"},
        )
    assert response.status_code == 202
    created = await outbox_body(order_database, order_models.outbox, "order.created")
    user_consumer = consumer_for(user_app.SPEC, user_database)
    assert (await user_consumer.handle(created)).outcome is Outcome.APPLIED
    reserved = await outbox_body(user_database, user_models.outbox, "user.credit_reserved")
    order_consumer = consumer_for(order_app.SPEC, order_database)
    assert (await order_consumer.handle(reserved)).outcome is Outcome.APPLIED
    await api.state.database.close()

    spans = EXPORTER.get_finished_spans()
    requests = [s for s in spans if s.name == "POST /orders"]
    [reservation] = [s for s in spans if s.name == "order.created process"]
    [confirmation] = [s for s in spans if s.name == "user.credit_reserved process"]
    assert len({s.context.trace_id for s in [*requests, reservation, confirmation]}) == 1
    assert set(ancestors(reservation, spans)) & {s.context.span_id for s in requests}
    assert parent_of(confirmation) == reservation.context.span_id
    assert reservation.kind is trace.SpanKind.CONSUMER
    assert any(s.kind is trace.SpanKind.SERVER for s in requests)


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


def ancestors(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> list[int]:
    """Span ids from `span`'s parent up to its root, within the recorded spans."""
    by_id = {s.context.span_id: s for s in spans}
    chain: list[int] = []
    parent = parent_of(span)
    while parent is not None:
        chain.append(parent)
        parent = parent_of(by_id[parent]) if parent in by_id else None
    return chain


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
