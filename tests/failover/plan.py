"""How big a failover run is and which faults it injects, read from the environment.

With no environment, the short form that `make test` (and so CI) runs: a few hundred orders, the
kill of the node leading the services' queues and one database failover. `make failover` sets
`FAILOVER_FULL=1`: over two thousand orders over three minutes and more, and every fault:

1. kill -9 the node leading the services' queues (it is restarted and rejoins);
2. kill -9 another node (restarted, rejoins);
3. partition the node leading most queues from the other two for 30 s, then heal;
4. stop the PostgreSQL primary in immediate mode and promote the standby; the old primary is
   rewound and rejoins as the synchronous standby;
5. fail back: the same once more, towards the first primary.

    FAILOVER_FULL    1 for the full form
    FAILOVER_SEED    seed of every random choice, to replay a run (default: a fresh one)
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from tests.failover.faults import FailoverKind

ORDERS_PER_USER = 10
CREDIT_LIMIT = 10_000
SIDE_STREAM_RATE = 20.0
"""numbered messages published per second on the side stream"""

SHORT_FAULTS = (FailoverKind.KILL_QUEUE_LEADER, FailoverKind.POSTGRES_FAILOVER)
FULL_FAULTS = (
    FailoverKind.KILL_QUEUE_LEADER,
    FailoverKind.KILL_ANOTHER_NODE,
    FailoverKind.PARTITION,
    FailoverKind.POSTGRES_FAILOVER,
    FailoverKind.POSTGRES_FAILBACK,
)


@dataclass(frozen=True)
class FailoverPlan:
    full: bool
    orders: int
    load_seconds: float
    faults: tuple[FailoverKind, ...]
    seed: int

    @classmethod
    def from_env(cls) -> FailoverPlan:
        full = os.environ.get("FAILOVER_FULL", "") not in ("", "0")
        seed = int(os.environ.get("FAILOVER_SEED") or random.SystemRandom().randrange(10**9))
        if full:
            return cls(full, orders=2_100, load_seconds=190.0, faults=FULL_FAULTS, seed=seed)
        return cls(full, orders=200, load_seconds=24.0, faults=SHORT_FAULTS, seed=seed)

    @property
    def users(self) -> int:
        return max(2, self.orders // ORDERS_PER_USER)

    @property
    def fault_interval(self) -> float:
        return self.load_seconds / len(self.faults)

    @property
    def timeout_seconds(self) -> float:
        """For the whole run, start to findings: well beyond what it takes."""
        return 420.0 if self.full else 240.0
