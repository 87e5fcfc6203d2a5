"""Under load and injected faults, the system loses nothing, applies nothing twice, and agrees.

Two replicas of each service take orders from many users (some over their credit, some
cancelled, some for stock that runs out) while replicas of every service are SIGKILLed,
RabbitMQ and PostgreSQL restart, TCP links between replicas and servers are cut, stalled and
reset, and an outside client publishes duplicate, reordered and malformed events. Once the
faults stop and the system has converged, each test below checks one promise of the contract
against the three databases and the DLQs.

`pytest -m chaos` runs the short form (as `make test` and CI do); `make chaos` the full size.
"""

from __future__ import annotations

import pytest

from tests.chaos.faults import FaultKind
from tests.chaos.plan import CONVERGENCE_TIMEOUT_SECONDS, ChaosPlan
from tests.chaos.report import ChaosRun
from tests.chaos.stack import READY_TIMEOUT_SECONDS

# The first test's time includes the whole run (stack, load with its faults, convergence).
pytestmark = [
    pytest.mark.chaos,
    pytest.mark.timeout(
        READY_TIMEOUT_SECONDS + 3 * ChaosPlan.from_env().load_seconds + CONVERGENCE_TIMEOUT_SECONDS
    ),
]


async def test_every_fault_kind_was_injected_while_orders_were_placed(chaos_run: ChaosRun) -> None:
    kinds = {fault.kind for fault in chaos_run.faults}
    assert len(chaos_run.faults) == chaos_run.plan.faults
    if chaos_run.plan.faults >= len(FaultKind):
        assert kinds == set(FaultKind)
    assert all(f.started < chaos_run.load.last_acknowledged for f in chaos_run.faults)


async def test_the_system_converges_after_the_last_fault(chaos_run: ChaosRun) -> None:
    assert chaos_run.convergence.converged, chaos_run.convergence.waiting_for


async def test_every_request_gets_an_answer_the_contract_allows(chaos_run: ChaosRun) -> None:
    assert chaos_run.load.unexpected == []
    assert chaos_run.load.abandoned == []


async def test_no_acknowledged_order_is_lost_and_every_order_ends_terminal(
    chaos_run: ChaosRun,
) -> None:
    assert chaos_run.findings.lost == []
    assert chaos_run.findings.orders["pending"] == 0


async def test_every_order_ends_in_the_state_its_credit_and_stock_allowed(
    chaos_run: ChaosRun,
) -> None:
    assert chaos_run.findings.wrong_decisions == []


async def test_some_orders_are_rejected_because_stock_ran_out(chaos_run: ChaosRun) -> None:
    assert chaos_run.findings.out_of_stock > 0


async def test_the_credit_invariant_holds_for_every_user(chaos_run: ChaosRun) -> None:
    assert chaos_run.findings.users_checked == len(chaos_run.load.users)
    assert chaos_run.findings.invariant_violations == []


async def test_the_stock_invariant_holds_for_every_stock_managed_sku(
    chaos_run: ChaosRun,
) -> None:
    assert chaos_run.findings.skus_checked == len(chaos_run.load.stock) > 0
    assert chaos_run.findings.stock_violations == []


async def test_no_event_has_its_effect_twice(chaos_run: ChaosRun) -> None:
    assert chaos_run.findings.duplicated == []


async def test_reordered_events_end_where_in_order_delivery_would(chaos_run: ChaosRun) -> None:
    assert chaos_run.findings.reorder_violations == []


async def test_every_malformed_message_is_dead_lettered_and_nothing_else_is(
    chaos_run: ChaosRun,
) -> None:
    assert chaos_run.findings.malformed_missing == []
    assert chaos_run.findings.unexpected_dead_letters == []


async def test_nothing_is_left_unpublished_in_any_outbox(chaos_run: ChaosRun) -> None:
    assert chaos_run.findings.unpublished == {"user_svc": 0, "order_svc": 0, "inventory_svc": 0}
