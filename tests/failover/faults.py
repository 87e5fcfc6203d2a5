"""The failover run's faults, how long the system took to recover from each, and the repair.

Each fault has three parts, recorded with their times:

1. the strike: a node SIGKILLed, a node cut off from the other two, the PostgreSQL primary
   stopped in immediate mode and its standby promoted;
2. recovery, measured from the strike: an order placed after it has been decided by the whole
   saga (order_svc, the relay, the broker, user_svc and back), and every replica answers
   /readyz again;
3. the repair an operator (or the StatefulSet, or the PostgreSQL operator) makes: the killed
   node started again until it is back in the cluster; the partition healed after 30 s and the
   cluster whole again; the old primary rewound and back as the synchronous standby.

Faults run one after the other, each at its slot in the schedule or as soon as the previous one
is repaired, so the next fault always meets a whole system.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from broker.topology import TOPOLOGY

if TYPE_CHECKING:
    from tests.chaos.load import LoadGenerator
    from tests.failover.stack import FailoverStack
    from tests.support.servers.rabbitmq import RabbitNode

log = logging.getLogger(__name__)

PARTITION_SECONDS = 30.0
HEAL_TIMEOUT_SECONDS = 60.0
RECOVERY_TIMEOUT_SECONDS = 120.0


class FailoverKind(StrEnum):
    KILL_QUEUE_LEADER = "kill -9 the node leading the services' queues"
    KILL_ANOTHER_NODE = "kill -9 another node"
    PARTITION = "partition a node from the other two, 30 s"
    POSTGRES_FAILOVER = "PostgreSQL primary stopped (immediate), standby promoted"
    POSTGRES_FAILBACK = "PostgreSQL fail back to the first primary"


@dataclass(frozen=True)
class Fault:
    kind: FailoverKind
    target: str
    started: float
    """time.monotonic() of the strike"""
    recovered: float | None
    """seconds from the strike until the system worked again; None if it did not in time"""
    repair: str
    repaired: float
    """seconds from the strike until the repair was done (or failed)"""
    repair_failed: bool = False

    @property
    def ended(self) -> float:
        return self.started + self.repaired


@dataclass
class FailoverInjector:
    stack: FailoverStack
    load: LoadGenerator
    rng: random.Random
    injected: list[Fault] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    killed: list[RabbitNode] = field(default_factory=list)
    partitioned: RabbitNode | None = None
    partitioned_at: float = 0.0

    async def run(self, kinds: Sequence[FailoverKind], *, interval: float) -> None:
        """Inject `kinds` in order, the i-th at `(i + 0.5) * interval` after the start."""
        start = time.monotonic()
        try:
            for i, kind in enumerate(kinds):
                await asyncio.sleep(max(0.0, start + (i + 0.5) * interval - time.monotonic()))
                await self.inject(kind)
        finally:
            self.finished.set()

    @property
    def last_ended(self) -> float:
        return max((f.ended for f in self.injected), default=time.monotonic())

    async def inject(self, kind: FailoverKind) -> Fault:
        strike, repair = self._faults()[kind]
        started = time.monotonic()
        target = await strike()
        recovered = await self._recovery(since=started)
        try:
            what, failed = await repair(), False
        except Exception as error:  # reported with the fault; the run goes on to its findings
            what, failed = f"repair FAILED: {error}", True
        fault = Fault(
            kind=kind,
            target=target,
            started=started,
            recovered=recovered,
            repair=what,
            repaired=time.monotonic() - started,
            repair_failed=failed,
        )
        self.injected.append(fault)
        log.warning("fault: %s (%s), recovered in %s s", kind, target, recovered)
        return fault

    def _faults(
        self,
    ) -> dict[FailoverKind, tuple[Callable[[], Awaitable[str]], Callable[[], Awaitable[str]]]]:
        return {
            FailoverKind.KILL_QUEUE_LEADER: (self._kill_leader, self._restart_killed),
            FailoverKind.KILL_ANOTHER_NODE: (self._kill_another, self._restart_killed),
            FailoverKind.PARTITION: (self._partition, self._heal),
            FailoverKind.POSTGRES_FAILOVER: (self._fail_over, self._rejoin),
            FailoverKind.POSTGRES_FAILBACK: (self._fail_over, self._rejoin),
        }

    async def _kill_leader(self) -> str:
        return await self._kill(await self._busiest_leader(exclude=()))

    async def _kill_another(self) -> str:
        return await self._kill(await self._busiest_leader(exclude=self.killed))

    async def _kill(self, node: RabbitNode) -> str:
        await asyncio.to_thread(node.kill)
        self.killed.append(node)
        return node.node

    async def _restart_killed(self) -> str:
        node = self.killed[-1]
        await asyncio.to_thread(node.start)
        await asyncio.to_thread(self.stack.cluster.wait_until_formed)
        return f"{node.node} restarted and back in the cluster"

    async def _partition(self) -> str:
        node = self.partitioned = await self._busiest_leader(exclude=())
        self.partitioned_at = time.monotonic()
        await asyncio.to_thread(self.stack.cluster.partition, node)
        return f"{node.node} cut off from the other two"

    async def _heal(self) -> str:
        assert self.partitioned is not None
        await asyncio.sleep(max(0.0, self.partitioned_at + PARTITION_SECONDS - time.monotonic()))
        node, cluster = self.partitioned, self.stack.cluster
        await asyncio.to_thread(cluster.heal, node)
        healed = time.monotonic()
        if not await asyncio.to_thread(cluster.rejoin, node, within=HEAL_TIMEOUT_SECONDS):
            # Reported, not hidden.
            log.warning("the cluster did not heal by itself; %s was restarted", node.node)
            return (
                f"healed after {PARTITION_SECONDS:.0f} s; NOT whole {HEAL_TIMEOUT_SECONDS:.0f} s"
                f" later, whole {time.monotonic() - healed:.1f} s after the heal once"
                f" {node.node}'s application was restarted"
            )
        return (
            f"healed after {PARTITION_SECONDS:.0f} s, "
            f"cluster whole again {time.monotonic() - healed:.1f} s later"
        )

    async def _fail_over(self) -> str:
        old = self.stack.databases.primary
        new = await asyncio.to_thread(self.stack.databases.fail_over)
        return f"{old.name} stopped, {new.name} promoted"

    async def _rejoin(self) -> str:
        node = await asyncio.to_thread(self.stack.databases.rejoin)
        return f"{node.name} rewound and back as the synchronous standby"

    async def _busiest_leader(self, *, exclude: Sequence[RabbitNode]) -> RabbitNode:
        """The node leading the most of the services' queues (ties broken at random)."""
        cluster = self.stack.cluster
        leaders = await asyncio.to_thread(cluster.leaders, self.stack.vhost)
        counts = Counter(leaders.get(queue.name) for queue in TOPOLOGY.queues)
        candidates = [node for node in cluster.nodes if node not in exclude]
        self.rng.shuffle(candidates)
        return max(candidates, key=lambda node: counts[node.node])

    async def _recovery(self, *, since: float) -> float | None:
        """Seconds from `since` until an order placed now is decided and every replica is
        ready; None if that did not happen within RECOVERY_TIMEOUT_SECONDS."""
        deadline = since + RECOVERY_TIMEOUT_SECONDS
        while not await self.load.decided_order(timeout=deadline - time.monotonic()):
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.2)
        while time.monotonic() < deadline:
            if await self.stack.all_ready():
                return time.monotonic() - since
            await asyncio.sleep(0.2)
        return None
