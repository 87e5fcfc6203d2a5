"""The table a failover run ends with: the chaos suite's layout, plus what only a failover shows:
confirmed messages lost at the broker, and for each fault how long the system took to recover
and what the clients saw meanwhile."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.checker import Convergence, Findings
from tests.chaos.load import LoadResult
from tests.chaos.report import (
    findings_problems,
    log_exceptions,
    pairs,
    rejections,
    stock_invariant,
    table,
    time_to_converge,
)
from tests.failover.faults import FailoverKind, Fault
from tests.failover.plan import FailoverPlan
from tests.failover.side_stream import SideStream


@dataclass(frozen=True)
class FailoverRun:
    plan: FailoverPlan
    load: LoadResult
    faults: list[Fault]
    side_stream: SideStream
    convergence: Convergence
    findings: Findings
    log_dir: Path
    seconds: float
    load_started: float
    """time.monotonic() when the load and the faults began"""
    load_seconds: float


def render(run: FailoverRun) -> str:
    findings, load, side = run.findings, run.load, run.side_stream
    by_kind = Counter(f.kind for f in run.faults)
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(findings.orders.items()))
    rows: list[tuple[str, str]] = [
        (
            "orders placed",
            f"{len(load.acknowledged)} acknowledged over {run.load_seconds:.0f} s ({statuses})",
        ),
        ("users", f"{len(load.users)}, {sum(findings.orders.values())} orders in order_svc"),
        ("faults injected", str(len(run.faults))),
        *((f"  {kind}", str(by_kind[kind])) for kind in FailoverKind if by_kind[kind]),
        ("every fault recovered", str(all(f.recovered is not None for f in run.faults)).lower()),
        ("every failed server back", str(not any(f.repair_failed for f in run.faults)).lower()),
        ("lost", str(len(findings.lost))),
        ("duplicated effects", str(len(findings.duplicated))),
        (
            "credit invariant",
            f"{str(findings.invariant_holds).lower()} ({findings.users_checked} users)",
        ),
        ("stock invariant", stock_invariant(findings)),
        ("rejected", rejections(findings)),
        ("wrong decisions", str(len(findings.wrong_decisions))),
        ("dead-lettered", str(findings.dead_lettered)),
        ("unpublished in outboxes", pairs(findings.unpublished.items())),
        ("confirmed messages lost at the broker", _side_stream(side)),
        ("time to converge", time_to_converge(run.convergence)),
        ("client errors (retried)", pairs(load.retries.most_common()) or "none"),
        ("requests abandoned", str(len(load.abandoned))),
        ("unexpected answers", str(len(load.unexpected))),
        ("service log tracebacks", pairs(log_exceptions(run.log_dir).most_common(6)) or "none"),
        (
            "seed / wall time",
            f"FAILOVER_SEED={run.plan.seed} / {run.seconds:.0f} s",
        ),
    ]
    lines = table("failover run", rows)
    lines += ["faults (seconds from the start of the load):"]
    for fault in run.faults:
        lines += _fault(run, fault)
    lines += [f"service logs: {run.log_dir}"]
    found = problems(run)
    lines += [f"  {problem}" for problem in found[:20]]
    if len(found) > 20:
        lines.append(f"  ... and {len(found) - 20} more")
    return "\n".join(lines)


def problems(run: FailoverRun) -> list[str]:
    """Every finding that fails the run, one line each."""
    side = run.side_stream
    return [
        *findings_problems(run.findings, run.load, run.convergence),
        *(f"{f.kind} ({f.target}) not recovered" for f in run.faults if f.recovered is None),
        *(f"{f.kind} ({f.target}): {f.repair}" for f in run.faults if f.repair_failed),
        *([f"confirmed but never consumed: {side.lost[:20]}"] if side.lost else []),
        *([f"consumed but never published: {side.unexpected[:20]}"] if side.unexpected else []),
    ]


def _fault(run: FailoverRun, fault: Fault) -> list[str]:
    recovered = (
        "NOT recovered" if fault.recovered is None else f"recovered in {fault.recovered:.1f} s"
    )
    window_end = fault.started + (fault.recovered or fault.repaired)
    clients = _during(run.load.failures, fault.started, window_end)
    side = _during(run.side_stream.failures, fault.started, window_end)
    return [
        f"  {fault.started - run.load_started:6.1f}  {fault.kind}: {fault.target}",
        f"          {recovered}; {fault.repair} at +{fault.repaired:.1f} s",
        f"          HTTP clients saw, until recovered: {pairs(clients.most_common()) or 'nothing'}",
        f"          side stream saw: {pairs(side.most_common()) or 'nothing'}",
    ]


def _during(events: Iterable[tuple[float, str]], start: float, end: float) -> Counter[str]:
    return Counter(what for at, what in events if start <= at <= end)


def _side_stream(side: SideStream) -> str:
    return (
        f"{len(side.lost)} of {len(side.confirmed)} confirmed ({side.published} published, "
        f"{len(side.consumed)} consumed, {side.redelivered} redelivered)"
    )
