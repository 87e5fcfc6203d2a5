"""The private PostgreSQL pair behaves as the failover run relies on: the standby is synchronous,
a committed row survives the crash of the primary, and the old primary comes back as the new
synchronous standby, ready for the next failover."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers.postgres import PostgresPair
from tests.support.servers.registry import ServerRun

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(server_run: ServerRun) -> Iterator[PostgresPair]:
    pair = PostgresPair(server_run)
    pair.start()
    yield pair
    for node in pair.nodes:
        if node.running:
            node.stop("immediate")


def replication(pair: PostgresPair) -> str:
    return pair.primary.sql("SELECT application_name, sync_state FROM pg_stat_replication")


def test_the_standby_is_synchronous(pair: PostgresPair) -> None:
    assert replication(pair) == "pg2|sync"


def test_a_committed_row_survives_the_crash_of_the_primary(pair: PostgresPair) -> None:
    pair.primary.sql("CREATE TABLE t (n int)")
    pair.primary.sql("INSERT INTO t SELECT generate_series(1, 1000)")

    new = pair.fail_over()

    assert new.name == "pg2"
    assert new.sql("SELECT count(*) FROM t") == "1000"
    assert new.sql("SELECT pg_is_in_recovery()") == "f"


def test_the_old_primary_rejoins_as_the_synchronous_standby_and_can_take_over_again(
    pair: PostgresPair,
) -> None:
    pair.primary.sql("CREATE TABLE t (n int)")
    pair.fail_over()
    pair.primary.sql("INSERT INTO t VALUES (1)")  # written while the pair is one node

    rejoined = pair.rejoin()

    assert rejoined.name == "pg1"
    assert replication(pair) == "pg1|sync"
    pair.primary.sql("INSERT INTO t VALUES (2)")
    back = pair.fail_over()
    assert back is rejoined
    assert back.sql("SELECT string_agg(n::text, ',' ORDER BY n) FROM t") == "1,2"
    pair.rejoin()
    assert replication(pair) == "pg2|sync"
