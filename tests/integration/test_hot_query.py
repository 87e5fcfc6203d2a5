"""`shared.db.HotQuery`: Core statements run on the pooled connection's driver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Integer, bindparam, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import HotQuery, create_engine

pytestmark = pytest.mark.integration

_ECHO = HotQuery(
    select(literal_column("1").label("one"), bindparam("value", type_=Integer).label("value"))
)


@pytest.fixture
async def engine(user_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(user_db)
    yield engine
    await engine.dispose()


async def test_a_hot_query_binds_its_parameters_by_name(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        row = await _ECHO.fetchrow(connection, value=42)
    assert row is not None
    assert (row["one"], row["value"]) == (1, 42)


async def test_a_hot_query_on_an_invalidated_connection_runs_on_a_new_one(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        before = (await connection.get_raw_connection()).driver_connection
        await connection.invalidate()
        row = await _ECHO.fetchrow(connection, value=7)
        after = (await connection.get_raw_connection()).driver_connection
    assert row is not None
    assert row["value"] == 7
    assert after is not before
