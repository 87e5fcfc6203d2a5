"""The private PostgreSQL pair behaves as the failover run relies on: the standby is synchronous,
a committed row survives the crash of the primary, and the old primary comes back as the new
synchronous standby, ready for the next failover.

The session's pair serves them all; every test leaves a synchronous standby again, whichever
node is primary, and writes to a table of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.servers.postgres import PostgresPair

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(private_postgres_pair: PostgresPair) -> Iterator[PostgresPair]:
    yield private_postgres_pair
    private_postgres_pair.make_whole()


@pytest.fixture
def table(pair: PostgresPair) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:8]}"
    pair.primary.sql(f"CREATE TABLE {name} (n int)")
    yield name
    pair.make_whole()
    pair.primary.sql(f"DROP TABLE {name}")


def replication(pair: PostgresPair) -> str:
    return pair.primary.sql("SELECT application_name, sync_state FROM pg_stat_replication")


def test_the_standby_is_synchronous(pair: PostgresPair) -> None:
    assert pair.standby is not None
    assert replication(pair) == f"{pair.standby.name}|sync"


def test_a_committed_row_survives_the_crash_of_the_primary(pair: PostgresPair, table: str) -> None:
    standby = pair.standby
    pair.primary.sql(f"INSERT INTO {table} SELECT generate_series(1, 1000)")

    new = pair.fail_over()

    assert new is standby
    assert new.sql(f"SELECT count(*) FROM {table}") == "1000"  # noqa: S608
    assert new.sql("SELECT pg_is_in_recovery()") == "f"


def test_the_old_primary_rejoins_as_the_synchronous_standby_and_can_take_over_again(
    pair: PostgresPair, table: str
) -> None:
    first = pair.primary
    second = pair.fail_over()
    # Written while the pair is one node.
    pair.primary.sql(f"INSERT INTO {table} VALUES (1)")  # noqa: S608

    rejoined = pair.rejoin()

    assert rejoined is first
    assert replication(pair) == f"{first.name}|sync"
    pair.primary.sql(f"INSERT INTO {table} VALUES (2)")  # noqa: S608
    back = pair.fail_over()
    assert back is rejoined
    assert back.sql(f"SELECT string_agg(n::text, ',' ORDER BY n) FROM {table}") == "1,2"  # noqa: S608
    pair.rejoin()
    assert replication(pair) == f"{second.name}|sync"
