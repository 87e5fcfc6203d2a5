"""The table a chaos run ends with: what was done to the system, and what it came out as."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.checker import Convergence, Findings
from tests.chaos.faults import Fault, FaultKind
from tests.chaos.load import LoadResult
from tests.chaos.outside_events import OutsidePublisher
from tests.chaos.plan import ChaosPlan


@dataclass(frozen=True)
class ChaosRun:
    plan: ChaosPlan
    load: LoadResult
    faults: list[Fault]
    outside: OutsidePublisher
    convergence: Convergence
    findings: Findings
    log_dir: Path
    seconds: float
    load_started: float
    """time.monotonic() when the load and the faults began"""
    diagnostics: str = ""


def render(run: ChaosRun) -> str:
    findings, load = run.findings, run.load
    by_kind = Counter(f.kind for f in run.faults)
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(findings.orders.items()))
    rows: list[tuple[str, str]] = [
        ("orders placed", f"{len(load.acknowledged)} acknowledged ({statuses})"),
        ("users", f"{len(load.users)}, {sum(findings.orders.values())} orders in order_svc"),
        ("cancelled by clients", str(len(load.cancelled))),
        ("faults injected", str(len(run.faults))),
        *((f"  {kind}", str(by_kind[kind])) for kind in FaultKind),
        ("outside events published", _outside(run.outside)),
        ("lost", str(len(findings.lost))),
        ("duplicated effects", str(len(findings.duplicated))),
        ("dead-lettered", _dead_lettered(run)),
        (
            "credit invariant",
            f"{str(findings.invariant_holds).lower()} ({findings.users_checked} users)",
        ),
        ("stock invariant", stock_invariant(findings)),
        ("rejected", rejections(findings)),
        ("wrong decisions", str(len(findings.wrong_decisions))),
        ("reordered events wrong", str(len(findings.reorder_violations))),
        ("unpublished in outboxes", pairs(findings.unpublished.items())),
        ("time to converge", time_to_converge(run.convergence)),
        ("  last waited for", run.convergence.waiting_for or "nothing (converged at once)"),
        ("client retries", pairs(load.retries.most_common()) or "0"),
        ("requests abandoned", str(len(load.abandoned))),
        ("unexpected answers", str(len(load.unexpected))),
        ("service log tracebacks", pairs(log_exceptions(run.log_dir).most_common(6)) or "none"),
        ("seed / wall time", f"CHAOS_SEED={run.plan.seed} / {run.seconds:.0f} s"),
    ]
    lines = table("chaos run", rows)
    lines += ["faults (seconds from the start of the load, duration):"]
    lines += [
        f"  {f.started - run.load_started:6.1f}  {f.ended - f.started:4.1f}s  {f.kind}: {f.target}"
        for f in run.faults
    ]
    lines += [f"service logs: {run.log_dir}"]
    found = problems(run)
    lines += [f"  {problem}" for problem in found[:20]]
    if len(found) > 20:
        lines.append(f"  ... and {len(found) - 20} more")
    if run.diagnostics:
        lines += ["diagnostics at the convergence deadline:", run.diagnostics]
    return "\n".join(lines)


def table(title: str, rows: Sequence[tuple[str, str]]) -> list[str]:
    """Two columns, boxed, titled: the layout of every run's report."""
    width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows)
    rule = f"+-{'-' * width}-+-{'-' * value_width}-+"
    lines = [rule, f"| {title:<{width}} | {'':<{value_width}} |", rule]
    lines += [f"| {name:<{width}} | {value:<{value_width}} |" for name, value in rows]
    return [*lines, rule]


def problems(run: ChaosRun) -> list[str]:
    """Every finding that fails the run, one line each."""
    return findings_problems(run.findings, run.load, run.convergence)


def findings_problems(findings: Findings, load: LoadResult, convergence: Convergence) -> list[str]:
    """Every finding of the checker, the load and convergence that fails a run, one line each."""
    return [
        *findings.lost,
        *findings.duplicated,
        *findings.invariant_violations,
        *findings.stock_violations,
        *findings.wrong_decisions,
        *findings.reorder_violations,
        *findings.malformed_missing,
        *(f"unexpected dead letter {d}" for d in findings.unexpected_dead_letters),
        *(f"{n} unpublished in {s}" for s, n in findings.unpublished.items() if n),
        *(f"load: {u}" for u in load.unexpected),
        *(f"load: {a}" for a in load.abandoned),
        *(
            []
            if convergence.converged
            else [f"no convergence: still waiting for {convergence.waiting_for}"]
        ),
    ]


def log_exceptions(log_dir: Path) -> Counter[str]:
    """Exception types of the tracebacks in the service logs (one per chained exception)."""
    counts: Counter[str] = Counter()
    for log in log_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        for block in text.split("Traceback (most recent call last):")[1:]:
            # The first unindented line after the frames names the exception.
            line = next((x for x in block.splitlines() if x and not x[0].isspace()), "?")
            counts[line.split(":", 1)[0].rsplit(".", 1)[-1]] += 1
    return counts


def _outside(outside: OutsidePublisher) -> str:
    return (
        f"{outside.duplicates_published} duplicates, {outside.reordered_published} reordered, "
        f"{len(outside.malformed)} malformed"
    )


def _dead_lettered(run: ChaosRun) -> str:
    findings = run.findings
    malformed = len(run.outside.malformed)
    found = malformed - len(findings.malformed_missing)
    return (
        f"{findings.dead_lettered} ({found} of {malformed} malformed found, "
        f"{len(findings.unexpected_dead_letters)} unexpected)"
    )


def stock_invariant(findings: Findings) -> str:
    return (
        f"{str(findings.stock_invariant_holds).lower()} ({findings.skus_checked} stock-managed "
        f"SKUs, {findings.skus_sold_out} sold out)"
    )


def rejections(findings: Findings) -> str:
    return pairs(sorted(findings.rejections.items())) or "none"


def time_to_converge(convergence: Convergence) -> str:
    if convergence.converged:
        return f"{convergence.seconds:.1f} s after the last fault"
    return f"NOT converged after {convergence.seconds:.0f} s"


def pairs(items: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{name} {count}" for name, count in items)
