"""The fault injectors, and the schedule that spreads them over the load.

Faults run one after the other, each at its slot in the schedule (or as soon as the previous one
is over, if that took longer), so the run is bounded in count and in time; `finished` tells the
load generator when the last one is over. The faults that hit one replica (a SIGKILL, a TCP
fault on its database or broker link) take the services in turn, so every service, inventory_svc
too, is hit as soon as there are that many of them. Each one is recorded
with its kind, its target and when it started and ended; the last end is where the time to
converge is measured from.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tests.chaos import servers
from tests.chaos.outside_events import OutsidePublisher
from tests.chaos.stack import SERVICES, ChaosStack, Replica
from tests.support.proxy import TcpProxy

log = logging.getLogger(__name__)

REPLICA_DOWN_SECONDS = 1.0
REPLICA_RESTART_ATTEMPTS = 3
RABBITMQ_DOWN_SECONDS = 2.0
CUT_SECONDS = 2.0
STALL_SECONDS = 3.0


class FaultKind(StrEnum):
    KILL_REPLICA = "SIGKILL a replica, restart it"
    RABBITMQ_RESTART = "RabbitMQ stop_app / start_app"
    RABBITMQ_CLOSE_CONNECTIONS = "RabbitMQ close all connections"
    POSTGRES_RESTART = "PostgreSQL restart (immediate)"
    TCP_CUT = "TCP cut"
    TCP_STALL = "TCP stall"
    TCP_RESET = "TCP reset"
    DUPLICATE_EVENTS = "duplicate events"
    REORDERED_EVENTS = "reordered events"
    MALFORMED_EVENTS = "malformed events"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    target: str
    started: float
    """time.monotonic()"""
    ended: float


@dataclass
class FaultInjector:
    stack: ChaosStack
    outside: OutsidePublisher
    rng: random.Random
    injected: list[Fault] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    turn: int | None = None
    """whose turn it is to lose a replica: an index into SERVICES, counting up"""

    async def run(self, kinds: Sequence[FaultKind], *, interval: float) -> None:
        """Inject `kinds` in order, the i-th at `(i + 0.5) * interval` after the start."""
        start = time.monotonic()
        try:
            for i, kind in enumerate(kinds):
                await asyncio.sleep(max(0.0, start + (i + 0.5) * interval - time.monotonic()))
                await self.inject(kind)
        finally:
            self.finished.set()

    async def inject(self, kind: FaultKind) -> Fault:
        started = time.monotonic()
        target = await self._injectors()[kind]()
        fault = Fault(kind=kind, target=target, started=started, ended=time.monotonic())
        self.injected.append(fault)
        log.warning("fault: %s (%s) in %.1fs", kind, target, fault.ended - started)
        return fault

    @property
    def last_ended(self) -> float:
        return max((f.ended for f in self.injected), default=time.monotonic())

    def _injectors(self) -> dict[FaultKind, Callable[[], Awaitable[str]]]:
        return {
            FaultKind.KILL_REPLICA: self._kill_replica,
            FaultKind.RABBITMQ_RESTART: self._restart_rabbitmq,
            FaultKind.RABBITMQ_CLOSE_CONNECTIONS: self._close_rabbitmq_connections,
            FaultKind.POSTGRES_RESTART: self._restart_postgres,
            FaultKind.TCP_CUT: self._cut,
            FaultKind.TCP_STALL: self._stall,
            FaultKind.TCP_RESET: self._reset,
            FaultKind.DUPLICATE_EVENTS: self.outside.publish_duplicates,
            FaultKind.REORDERED_EVENTS: self.outside.publish_reordered,
            FaultKind.MALFORMED_EVENTS: self.outside.publish_malformed,
        }

    def _replica(self) -> Replica:
        """A replica of the next service in turn (from a random first one)."""
        if self.turn is None:
            self.turn = self.rng.randrange(len(SERVICES))
        service = SERVICES[self.turn % len(SERVICES)]
        self.turn += 1
        return self.rng.choice(self.stack.replicas_of(service))

    async def _kill_replica(self) -> str:
        replica = self._replica()
        replica.process.kill()
        # Down for a moment, while the load and the messages go to the other replica.
        await asyncio.sleep(REPLICA_DOWN_SECONDS)
        await restart(replica)
        return replica.name

    async def _restart_rabbitmq(self) -> str:
        await servers.restart_rabbitmq(self.stack.rabbitmq, RABBITMQ_DOWN_SECONDS)
        return "rabbitmq"

    async def _close_rabbitmq_connections(self) -> str:
        await servers.close_rabbitmq_connections(self.stack.rabbitmq, self.stack.vhost)
        return f"vhost {self.stack.vhost}"

    async def _restart_postgres(self) -> str:
        await servers.restart_postgres(self.stack.postgres)
        return "postgresql"

    async def _cut(self) -> str:
        replica, proxy, name = self._link()
        await proxy.cut(CUT_SECONDS)
        return f"{replica.name} -> {name}, {CUT_SECONDS:.0f}s"

    async def _stall(self) -> str:
        replica, proxy, name = self._link()
        await proxy.stall(STALL_SECONDS)
        return f"{replica.name} -> {name}, {STALL_SECONDS:.0f}s"

    async def _reset(self) -> str:
        replica, proxy, name = self._link()
        connections = proxy.connections
        proxy.reset()
        return f"{replica.name} -> {name}, {connections} connections"

    def _link(self) -> tuple[Replica, TcpProxy, str]:
        replica = self._replica()
        if self.rng.random() < 0.5:
            return replica, replica.database, "postgresql"
        return replica, replica.broker, "rabbitmq"


async def restart(replica: Replica) -> None:
    """Start a replica again and wait until it is ready; a start that fails is tried again."""
    for attempt in range(1, REPLICA_RESTART_ATTEMPTS + 1):
        replica.process.start()
        try:
            await replica.process.wait_ready(timeout=60)
        except (RuntimeError, AssertionError):
            replica.process.kill()
            if attempt == REPLICA_RESTART_ATTEMPTS:
                raise
            log.warning("%s did not come up, starting it again", replica.name)
        else:
            return
