"""order_svc's workers measure how many orders wait for their saga and how old the oldest is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import bindparam, insert

from order_svc.app import SPEC
from order_svc.models import orders
from order_svc.pending_orders import PendingOrders
from order_svc.queries import OrderQueries
from order_svc.settings import OrderSettings
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from shared.persistence.statements import Statement
from shared.runtime import composition
from shared.runtime.roles import Role
from shared.web.tokens import StaticKeys

pytestmark = pytest.mark.integration


_ADD_ORDER = Statement(
    insert(orders).values(
        {
            name: bindparam(name, type_=orders.c[name].type)
            for name in ("id", "user_id", "status", "total", "version", "created_at", "updated_at")
        }
    )
)


async def add_order(database: Database, *, status: str, age: timedelta) -> None:
    created = datetime.now(UTC) - age
    async with database.transaction() as connection:
        await _ADD_ORDER.execute(
            connection,
            id=uuid4(),
            user_id=uuid4(),
            status=status,
            total=100,
            version=1 if status == "pending" else 2,
            created_at=created,
            updated_at=created,
        )


def sample(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name)
    assert value is not None
    return value


async def test_the_oldest_pending_order_is_the_saga_age(order_database: Database) -> None:
    await add_order(order_database, status="confirmed", age=timedelta(hours=2))
    await add_order(order_database, status="pending", age=timedelta(minutes=10))
    await add_order(order_database, status="pending", age=timedelta(seconds=5))
    registry = CollectorRegistry()

    await PendingOrders(OrderQueries(order_database), registry).measure()

    assert sample(registry, "orders_pending") == 2
    assert 600 <= sample(registry, "orders_oldest_pending_age_seconds") < 660


async def test_no_pending_order_is_an_age_of_zero(order_database: Database) -> None:
    await add_order(order_database, status="rejected", age=timedelta(hours=1))
    registry = CollectorRegistry()

    await PendingOrders(OrderQueries(order_database), registry).measure()

    assert sample(registry, "orders_pending") == 0
    assert sample(registry, "orders_oldest_pending_age_seconds") == 0


@pytest.mark.parametrize(
    ("role", "measures"),
    [(Role.ALL, True), (Role.WORKER, True), (Role.API, False), (Role.RELAY, False)],
)
def test_the_roles_that_consume_measure_pending_orders(role: Role, measures: bool) -> None:
    settings = OrderSettings()
    parts = composition.parts_of(
        role,
        SPEC,
        settings,
        database=Database(settings.database_url),
        metrics=Metrics(),
        token_keys=StaticKeys([]),
    )

    assert any(isinstance(part, PendingOrders) for part in parts) is measures
