"""Losing a broker node or the database primary under load loses nothing and applies nothing
twice, on a real 3-node RabbitMQ cluster and a PostgreSQL primary with a synchronous standby.

Two replicas of each service take orders while nodes of the cluster are SIGKILLed (first the one
leading the services' queues, then another) or cut off by a partition, and while the database
primary crashes and its standby takes over (and, in the full form, the old primary comes back
as the standby and takes over again). A numbered side stream, published with confirms and
consumed throughout, counts what the broker lost of what it confirmed. Each test below checks
one promise against the three databases, the DLQs and the side stream.

`pytest -m failover` runs the short form (as `make test` and CI do); `make failover` the full.
"""

from __future__ import annotations

import pytest

from tests.failover.plan import FailoverPlan
from tests.failover.report import FailoverRun

# The first test's time includes the whole run (servers, services, load, faults, convergence).
pytestmark = [pytest.mark.failover, pytest.mark.timeout(FailoverPlan.from_env().timeout_seconds)]


async def test_every_fault_was_injected_while_orders_were_placed(
    failover_run: FailoverRun,
) -> None:
    assert [f.kind for f in failover_run.faults] == list(failover_run.plan.faults)
    assert all(f.started < failover_run.load.last_acknowledged for f in failover_run.faults)


async def test_the_system_recovers_from_every_fault(failover_run: FailoverRun) -> None:
    assert [f for f in failover_run.faults if f.recovered is None] == []


async def test_every_failed_server_comes_back(failover_run: FailoverRun) -> None:
    """A killed node rejoins the cluster, a partitioned one too once the partition heals, and
    a failed primary comes back as the synchronous standby."""
    assert [f.repair for f in failover_run.faults if f.repair_failed] == []


async def test_the_system_converges_after_the_last_fault(failover_run: FailoverRun) -> None:
    assert failover_run.convergence.converged, failover_run.convergence.waiting_for


async def test_every_request_gets_an_answer_the_contract_allows(
    failover_run: FailoverRun,
) -> None:
    assert failover_run.load.unexpected == []
    assert failover_run.load.abandoned == []


async def test_no_acknowledged_order_is_lost_and_every_order_ends_terminal(
    failover_run: FailoverRun,
) -> None:
    assert failover_run.findings.lost == []
    assert failover_run.findings.orders["pending"] == 0


async def test_every_order_ends_in_the_state_its_credit_and_stock_allowed(
    failover_run: FailoverRun,
) -> None:
    assert failover_run.findings.wrong_decisions == []


async def test_the_credit_invariant_holds_for_every_user(failover_run: FailoverRun) -> None:
    assert failover_run.findings.users_checked == len(failover_run.load.users)
    assert failover_run.findings.invariant_violations == []


async def test_the_stock_invariant_holds_for_every_stock_managed_sku(
    failover_run: FailoverRun,
) -> None:
    assert failover_run.findings.skus_checked == len(failover_run.load.stock) > 0
    assert failover_run.findings.stock_violations == []


async def test_no_event_has_its_effect_twice(failover_run: FailoverRun) -> None:
    assert failover_run.findings.duplicated == []


async def test_no_publisher_confirmed_message_is_lost_at_the_broker(
    failover_run: FailoverRun,
) -> None:
    side = failover_run.side_stream
    assert side.confirmed
    assert side.lost == []
    assert side.unexpected == []


async def test_nothing_is_dead_lettered_and_nothing_is_left_unpublished(
    failover_run: FailoverRun,
) -> None:
    assert failover_run.findings.unexpected_dead_letters == []
    assert failover_run.findings.unpublished == {
        "user_svc": 0,
        "order_svc": 0,
        "inventory_svc": 0,
    }
