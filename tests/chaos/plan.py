"""How big a chaos run is, and which faults it injects in which order: read from the environment.

With no environment, the short form that `make test` (and so CI) runs: a few hundred orders and
one fault of every kind. `make chaos` sets the full size:

    CHAOS_ORDERS   orders to place (default 200; `make chaos`: 2000)
    CHAOS_FAULTS   faults to inject (default: one of each kind; `make chaos`: 12)
    CHAOS_SEED     seed of every random choice, to replay a run (default: a fresh one)
    CHAOS_RATE     orders per second the load aims at (default 25)

The load is paced to last at least `faults * MIN_FAULT_INTERVAL` seconds and the faults are
spread over that time; the load's last few orders also wait for the last fault to be over, so
every fault lands while orders are still being placed.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from tests.chaos.faults import FaultKind

ORDERS_PER_USER = 10
CREDIT_LIMIT = 10_000
MIN_FAULT_INTERVAL = 3.0
DEFAULT_RATE = 25.0
CONVERGENCE_TIMEOUT_SECONDS = 200.0
"""Longer than the whole retry schedule (1 + 5 + 30 + 120 s), so a message that needed every
retry still converges instead of being counted as lost."""


@dataclass(frozen=True)
class ChaosPlan:
    orders: int
    faults: int
    seed: int
    rate: float

    @classmethod
    def from_env(cls) -> ChaosPlan:
        orders = int(os.environ.get("CHAOS_ORDERS", "200"))
        faults = int(os.environ.get("CHAOS_FAULTS", str(len(FaultKind))))
        if orders < 1 or faults < 1:
            raise ValueError("CHAOS_ORDERS and CHAOS_FAULTS must be positive")
        return cls(
            orders=orders,
            faults=faults,
            seed=int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**9)),
            rate=float(os.environ.get("CHAOS_RATE", str(DEFAULT_RATE))),
        )

    @property
    def users(self) -> int:
        return max(2, self.orders // ORDERS_PER_USER)

    @property
    def load_seconds(self) -> float:
        return max(self.orders / self.rate, self.faults * MIN_FAULT_INTERVAL)

    @property
    def fault_interval(self) -> float:
        return self.load_seconds / self.faults

    def fault_kinds(self, rng: random.Random) -> list[FaultKind]:
        """Every kind once (in a random order) before any kind comes twice."""
        kinds: list[FaultKind] = []
        while len(kinds) < self.faults:
            round_ = list(FaultKind)
            rng.shuffle(round_)
            kinds.extend(round_)
        return kinds[: self.faults]
