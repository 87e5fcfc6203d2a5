"""Resource limits at the edges: oversized request bodies and oversized messages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from order_svc.app import SPEC, create_app
from order_svc.models import inbox
from order_svc.settings import OrderSettings
from order_svc.uow import unit_of_work
from shared.messaging.consumer import EventConsumer
from shared.messaging.middleware import Outcome
from shared.observability.metrics import Metrics
from shared.persistence.database import Database

pytestmark = pytest.mark.integration


@pytest.fixture
def api(order_db: str) -> httpx.AsyncClient:
    app = create_app(
        OrderSettings(ORDER_SVC_DATABASE_URL=order_db, MAX_REQUEST_BYTES=1_000)  # type: ignore[call-arg]
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://order_svc")


async def test_a_request_body_over_the_cap_is_refused_with_413(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/orders", content=b"x" * 1_001, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_chunked_body_over_the_cap_is_refused_too(api: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 100

    response = await api.post(
        "/orders", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413


async def test_a_body_under_the_cap_reaches_the_route(api: httpx.AsyncClient) -> None:
    response = await api.post("/orders", json={"items": []})

    assert response.status_code == 401


async def test_a_message_over_the_cap_is_dead_lettered_unread(order_database: Database) -> None:
    consumer = EventConsumer(
        queue=SPEC.queue,
        handlers=SPEC.handlers,
        unit_of_work=lambda: unit_of_work(order_database),
        inbox_table=inbox,
        metrics=Metrics(),
        prefetch=1,
        max_attempts=1,
        max_message_bytes=100,
    )

    result = await consumer.handle(b"{" + b" " * 200 + b"}")

    assert result.outcome is Outcome.INVALID
    assert result.exception_type == "MessageTooLarge"
    assert result.envelope is None
