"""CPU time by process, from /proc: what each part of the system spends per order or request.

A throughput figure says how fast; this says where the machine's cores went while it was
measured, which is what decides how much faster it could go. PostgreSQL and RabbitMQ are
counted by process name (all of their processes on the machine, so run nothing else beside
the bench); the machine's own counters add what no process owns (interrupts, the loopback
network in softirq) and what the hypervisor took (steal).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
BY_NAME = {
    "postgres": "postgresql",
    "beam.smp": "rabbitmq",
    "erl_child_setup": "rabbitmq",
    "epmd": "rabbitmq",
}


def _process_seconds(pid: int) -> float:
    """User plus system time of one process (its own threads), 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _name(pid: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far: of each named pid, of the servers by name, and of the machine."""
    seconds = {label: _process_seconds(pid) for label, pid in pids.items()}
    seconds["bench"] = _process_seconds(os.getpid())
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            group = BY_NAME.get(_name(entry) or "")
            if group is not None:
                seconds[group] = seconds.get(group, 0.0) + _process_seconds(int(entry))
    # user nice system idle iowait irq softirq steal: busy is everything but idle and iowait.
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    seconds["machine_busy"] = (sum(ticks) - ticks[3] - ticks[4] - ticks[7]) / TICK
    seconds["machine_steal"] = ticks[7] / TICK
    return seconds


def per_unit(
    before: Mapping[str, float], after: Mapping[str, float], units: float
) -> dict[str, float]:
    """Milliseconds of CPU per unit of work (order, request) for each entry of the snapshots.

    A process that ended in between is left out rather than counted as negative time.
    """
    if units <= 0:
        return {}
    return {
        name: round(1000 * (after[name] - before.get(name, 0.0)) / units, 3)
        for name in after
        if after[name] >= before.get(name, 0.0)
    }


class Tally:
    """CPU seconds summed over several measured stretches, and the units of work done in them:
    for a figure measured in repetitions with other measurements between them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.units = 0.0

    def add(self, before: Mapping[str, float], after: Mapping[str, float], units: float) -> None:
        """One stretch; as in `per_unit`, a process that ended in between is left out."""
        self.units += units
        for name, value in after.items():
            if value >= before.get(name, 0.0):
                self.seconds[name] = self.seconds.get(name, 0.0) + value - before.get(name, 0.0)

    def per_unit(self) -> dict[str, float]:
        """Milliseconds of CPU per unit of work, over every stretch added."""
        if self.units <= 0:
            return {}
        return {name: round(1000 * s / self.units, 3) for name, s in self.seconds.items()}
