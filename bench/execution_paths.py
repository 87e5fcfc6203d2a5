"""`python -m bench.execution_paths`: the decision of issue 13 item 1, measured again. One statement
and one transaction run through SQLAlchemy's own execution (an `AsyncEngine`, Core statements)
and through the path the services take (asyncpg under Core-compiled statements,
`shared.persistence.statements`), one at a time on the same database, wall and CPU time each.

Not part of `make bench`: it answers a design question, not a target. The transaction is the
shape of a saga step: lock a row, update it, append an outbox row, commit.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import uvloop
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from bench.infra import Resources
from order_svc.models import customers, orders, outbox
from order_svc.uow import ORDER_COLUMNS
from shared.persistence.database import Database, dsn
from shared.persistence.statements import Statement

ROUNDS = 7
OPERATIONS = 500

# `GET /orders/{id}`'s read: the order, its items as arrays, the customer's replica.
_VIEW = (
    select(
        *ORDER_COLUMNS,
        customers.c.name.label("customer_name"),
        customers.c.status.label("customer_status"),
        customers.c.version.label("customer_version"),
    )
    .outerjoin(customers, customers.c.id == orders.c.user_id)
    .where(orders.c.id == bindparam("order_id"))
)
_LOCK = (
    select(orders.c.id, orders.c.version)
    .where(orders.c.id == bindparam("order_id"))
    .with_for_update()
)
_SAVE = (
    update(orders)
    .where(orders.c.id == bindparam("order_id"))
    .values(version=bindparam("new_version"), updated_at=bindparam("changed_at"))
)
_APPEND = insert(outbox).values(
    id=bindparam("event_id"),
    type=bindparam("type"),
    subject=bindparam("subject"),
    body=bindparam("body"),
)
VIEW, LOCK, SAVE, APPEND = (Statement(s) for s in (_VIEW, _LOCK, _SAVE, _APPEND))
BODY = json.dumps({"data": "x" * 400}).encode()


async def seed(url: str) -> uuid.UUID:
    connection = await asyncpg.connect(dsn(url))
    order_id, now = uuid.uuid4(), datetime.now(UTC)
    try:
        await connection.execute(
            "INSERT INTO orders (id, user_id, status, total, version, created_at, updated_at) "
            "VALUES ($1, $2, 'pending', 3250, 1, $3, $3)",
            order_id,
            uuid.uuid4(),
            now,
        )
    finally:
        await connection.close()
    return order_id


async def timed(operation: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """Best of `ROUNDS` rounds: microseconds of wall and of CPU per operation."""
    for _ in range(50):
        await operation()
    wall, cpu = float("inf"), float("inf")
    for _ in range(ROUNDS):
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(OPERATIONS):
            await operation()
        wall = min(wall, (time.perf_counter() - started) / OPERATIONS * 1e6)
        cpu = min(cpu, (time.process_time() - cpu_started) / OPERATIONS * 1e6)
    return wall, cpu


async def measure(url: str) -> dict[str, dict[str, float]]:
    order_id = await seed(url)
    engine = create_async_engine(url, pool_size=4)
    database = Database(url, pool_size=4)
    version = 1

    async def sqlalchemy_select() -> None:
        async with engine.connect() as connection:
            (await connection.execute(_VIEW, {"order_id": order_id})).one()

    async def asyncpg_select() -> None:
        async with database.connection() as connection:
            await VIEW.fetchrow(connection, order_id=order_id)

    async def sqlalchemy_transaction() -> None:
        nonlocal version
        async with engine.begin() as connection:
            await connection.execute(_LOCK, {"order_id": order_id})
            version += 1
            await connection.execute(
                _SAVE,
                {"order_id": order_id, "new_version": version, "changed_at": datetime.now(UTC)},
            )
            await connection.execute(_APPEND, _event(order_id))

    async def asyncpg_transaction() -> None:
        nonlocal version
        async with database.transaction() as connection:
            await LOCK.fetchrow(connection, order_id=order_id)
            version += 1
            await SAVE.execute(
                connection, order_id=order_id, new_version=version, changed_at=datetime.now(UTC)
            )
            await APPEND.execute(connection, **_event(order_id))

    try:
        results = {}
        for name, operation in (
            ("select, SQLAlchemy execution", sqlalchemy_select),
            ("select, asyncpg under compiled Core", asyncpg_select),
            ("transaction, SQLAlchemy execution", sqlalchemy_transaction),
            ("transaction, asyncpg under compiled Core", asyncpg_transaction),
        ):
            wall, cpu = await timed(operation)
            results[name] = {"wall_us": round(wall, 1), "cpu_us": round(cpu, 1)}
            print(f"{name:42s} {wall:7.1f} us wall {cpu:7.1f} us CPU", flush=True)
        return results
    finally:
        await engine.dispose()
        await database.close()


def _event(order_id: uuid.UUID) -> dict[str, object]:
    return {"event_id": uuid.uuid4(), "type": "bench", "subject": str(order_id), "body": BODY}


async def main() -> None:
    resources = Resources()
    try:
        await measure(await resources.database("paths", migrated_for="order_svc"))
    finally:
        await resources.release()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
