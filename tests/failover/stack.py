"""The failover run's deployment: replicated servers, and two replicas of each service on them.

- RabbitMQ: three nodes, each in its own network namespace, formed into one cluster before any
  queue is declared, behind HAProxy (the services' only broker address, as a Kubernetes
  Service would be).
- PostgreSQL: one primary with one synchronous standby, holding both services' databases (each
  service still has its own database and reads no other). One pair keeps two cores' worth of
  servers small; a failover then hits both services at once, the harder case.
- The services: two replicas each, started as in production (`python -m user_svc`), each given
  the multi-host database URL and HAProxy's address, nothing else about the servers.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.processes import ServiceProcess, free_port
from tests.support.servers.haproxy import HAProxy
from tests.support.servers.postgres import PostgresPair
from tests.support.servers.rabbitmq import RabbitCluster
from tests.support.servers.registry import ServerRun
from tests.support.settings import ADMIN_EMAIL, JWT_SECRET, NO_RATE_LIMITS, SIGNING_KEY

SERVICES = ("user_svc", "order_svc", "inventory_svc")
REPLICAS_PER_SERVICE = 2
READY_TIMEOUT_SECONDS = 120
VHOST = "/"


@dataclass(eq=False)
class Replica:
    name: str
    """e.g. `order_svc-2`"""
    service: str
    process: ServiceProcess

    @property
    def url(self) -> str:
        return self.process.url


@dataclass
class FailoverStack:
    run: ServerRun
    log_dir: Path
    credit_limit: int
    cluster: RabbitCluster = field(init=False)
    balancer: HAProxy = field(init=False)
    databases: PostgresPair = field(init=False)
    replicas: list[Replica] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.cluster = RabbitCluster(self.run)
        self.balancer = HAProxy(self.run, self.cluster.nodes)
        self.databases = PostgresPair(self.run)

    @property
    def user_db(self) -> str:
        return self.databases.url("user_svc")

    @property
    def order_db(self) -> str:
        return self.databases.url("order_svc")

    @property
    def inventory_db(self) -> str:
        return self.databases.url("inventory_svc")

    @property
    def amqp_url(self) -> str:
        return self.balancer.url(VHOST)

    def replicas_of(self, service: str) -> list[Replica]:
        return [r for r in self.replicas if r.service == service]

    async def start(self) -> None:
        await asyncio.gather(
            asyncio.to_thread(self.cluster.start), asyncio.to_thread(self.databases.start)
        )
        await asyncio.to_thread(self.balancer.start)
        keys = self.log_dir / "token-keys.pem"
        keys.write_bytes(SIGNING_KEY.public_pem)
        for service in SERVICES:
            for number in range(1, REPLICAS_PER_SERVICE + 1):
                name = f"{service}-{number}"
                self.replicas.append(Replica(name, service, self._process(service, name, keys)))
        # Replicas of a service start together and migrate under an advisory lock.
        for replica in self.replicas:
            replica.process.start()
        await asyncio.gather(
            *(r.process.wait_ready(timeout=READY_TIMEOUT_SECONDS) for r in self.replicas)
        )

    def _process(self, service: str, name: str, keys: Path) -> ServiceProcess:
        prefix = service.upper()
        port = free_port()
        env = {
            **self.run.mark,
            "AMQP_URL": self.amqp_url,
            f"{prefix}_DATABASE_URL": self.databases.url(service),
            f"{prefix}_PORT": str(port),
            **NO_RATE_LIMITS,
            "JWT_SECRET": JWT_SECRET,
            "JWT_PUBLIC_KEYS_FILE": str(keys),
            "USER_DEFAULT_CREDIT_LIMIT": str(self.credit_limit),
            "ADMIN_EMAILS": ADMIN_EMAIL,
            "RELAY_POLL_SECONDS": "0.5",
            # The checker counts outbox rows: housekeeping must not delete them during the run.
            "OUTBOX_RETENTION_SECONDS": str(7 * 86_400),
        }
        return ServiceProcess(service, env, port, self.log_dir / f"{name}.log")

    async def all_ready(self) -> bool:
        """Every replica answers /readyz with 200 (its database and broker reachable)."""
        async with httpx.AsyncClient(timeout=5) as client:
            for replica in self.replicas:
                try:
                    if (await client.get(f"{replica.url}/readyz")).status_code != 200:
                        return False
                except httpx.TransportError:
                    return False
        return True

    def close(self) -> None:
        """Stop the services and keep the servers' logs beside theirs; the servers themselves
        go with their `ServerRun`."""
        for replica in self.replicas:
            replica.process.kill()
        kept = self.log_dir / "servers"
        for log in self.run.root.glob("*/**/*.log"):
            target = kept / log.relative_to(self.run.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, target)
