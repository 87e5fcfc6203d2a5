"""order_svc's workers measure how many orders wait for their saga and how old the oldest is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from order_svc.app import SPEC
from order_svc.models import orders
from order_svc.pending_orders import PendingOrders
from order_svc.settings import OrderSettings
from shared import service
from shared.auth import StaticKeys
from shared.db import create_engine
from shared.metrics import Metrics
from shared.roles import Role

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(order_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(order_db, pool_size=2)
    yield engine
    await engine.dispose()


async def add_order(engine: AsyncEngine, *, status: str, age: timedelta) -> None:
    created = datetime.now(UTC) - age
    async with engine.begin() as connection:
        await connection.execute(
            insert(orders).values(
                id=uuid4(),
                user_id=uuid4(),
                status=status,
                total=100,
                version=1 if status == "pending" else 2,
                created_at=created,
                updated_at=created,
            )
        )


def sample(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name)
    assert value is not None
    return value


async def test_the_oldest_pending_order_is_the_saga_age(engine: AsyncEngine) -> None:
    await add_order(engine, status="confirmed", age=timedelta(hours=2))
    await add_order(engine, status="pending", age=timedelta(minutes=10))
    await add_order(engine, status="pending", age=timedelta(seconds=5))
    registry = CollectorRegistry()

    await PendingOrders(engine, registry).measure()

    assert sample(registry, "orders_pending") == 2
    assert 600 <= sample(registry, "orders_oldest_pending_age_seconds") < 660


async def test_no_pending_order_is_an_age_of_zero(engine: AsyncEngine) -> None:
    await add_order(engine, status="rejected", age=timedelta(hours=1))
    registry = CollectorRegistry()

    await PendingOrders(engine, registry).measure()

    assert sample(registry, "orders_pending") == 0
    assert sample(registry, "orders_oldest_pending_age_seconds") == 0


@pytest.mark.parametrize(
    ("role", "measures"),
    [(Role.ALL, True), (Role.WORKER, True), (Role.API, False), (Role.RELAY, False)],
)
def test_the_roles_that_consume_measure_pending_orders(role: Role, measures: bool) -> None:
    settings = OrderSettings()
    parts = service.parts_of(
        role,
        SPEC,
        settings,
        engine=create_engine(settings.database_url),
        metrics=Metrics(),
        token_keys=StaticKeys([]),
    )

    assert any(isinstance(part, PendingOrders) for part in parts) is measures
