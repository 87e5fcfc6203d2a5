"""`shared.persistence.statements.Statement`: a Core statement compiled once, run by asyncpg with
its parameters passed by name."""

from __future__ import annotations

import pytest
from sqlalchemy import ARRAY, Integer, Text, any_, bindparam, literal, literal_column, select

from shared.persistence.database import Database
from shared.persistence.statements import Statement

pytestmark = pytest.mark.integration

_PAIR = Statement(
    select(
        bindparam("first", type_=Text).label("first"),
        bindparam("second", type_=Integer).label("second"),
    )
)
_IN_LIST = Statement(
    select(literal_column("1").label("found")).where(
        bindparam("value", type_=Integer) == any_(bindparam("values", type_=ARRAY(Integer)))
    )
)


async def test_a_statement_binds_its_parameters_by_name_in_any_order(
    user_database: Database,
) -> None:
    async with user_database.connection() as connection:
        row = await _PAIR.fetchrow(connection, second=42, first="answer")

    assert row is not None
    assert (row["first"], row["second"]) == ("answer", 42)


async def test_a_list_parameter_is_bound_as_one_array(user_database: Database) -> None:
    async with user_database.connection() as connection:
        found = await _IN_LIST.fetchval(connection, value=3, values=[1, 2, 3])
        missing = await _IN_LIST.fetchval(connection, value=4, values=[1, 2, 3])

    assert (found, missing) == (1, None)


async def test_a_statement_run_without_one_of_its_parameters_is_refused_by_name(
    user_database: Database,
) -> None:
    async with user_database.connection() as connection:
        with pytest.raises(KeyError, match="second"):
            await _PAIR.fetchrow(connection, first="answer")


_WRITTEN_IN = Statement(
    select(bindparam("given", type_=Integer).label("given"), literal(7, Integer).label("written"))
)


async def test_a_value_written_into_the_statement_is_sent_with_it(
    user_database: Database,
) -> None:
    async with user_database.connection() as connection:
        row = await _WRITTEN_IN.fetchrow(connection, given=3)

    assert row is not None
    assert (row["given"], row["written"]) == (3, 7)
