"""The failover run's deployment: replicated servers, and two replicas of each service on them.

- RabbitMQ: three nodes, each in its own network namespace, formed into one cluster before any
  queue is declared, behind HAProxy (the services' only broker address, as a Kubernetes
  Service would be).
- PostgreSQL: one primary with one synchronous standby, holding both services' databases (each
  service still has its own database and reads no other). One pair keeps two cores' worth of
  servers small; a failover then hits both services at once, the harder case.
- The services: two replicas each, started as in production (`python -m user_svc`), each given
  the multi-host database URL and HAProxy's address, nothing else about the servers.

The servers are the session's private cluster and pair (`tests/support/servers/plugin.py`):
the run has a vhost and databases of its own on them, removed at the end, and leaves the
servers whole, as every fault's repair does.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.persistence.database import drop_database
from tests.support.processes import ServiceProcess, free_port
from tests.support.servers.haproxy import HAProxy
from tests.support.servers.postgres import PostgresPair
from tests.support.servers.rabbitmq import RabbitCluster
from tests.support.servers.registry import ServerRun
from tests.support.settings import ADMIN_EMAIL, JWT_SECRET, NO_RATE_LIMITS, SIGNING_KEY

SERVICES = ("user_svc", "order_svc", "inventory_svc")
REPLICAS_PER_SERVICE = 2
READY_TIMEOUT_SECONDS = 120


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
    cluster: RabbitCluster
    balancer: HAProxy
    databases: PostgresPair
    log_dir: Path
    credit_limit: int
    vhost: str = field(init=False)
    service_databases: dict[str, str] = field(init=False)
    replicas: list[Replica] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        suffix = uuid.uuid4().hex[:12]
        self.vhost = f"failover-{suffix}"
        self.service_databases = {
            service: self.databases.url(f"failover_{service}_{suffix}") for service in SERVICES
        }

    @property
    def user_db(self) -> str:
        return self.service_databases["user_svc"]

    @property
    def order_db(self) -> str:
        return self.service_databases["order_svc"]

    @property
    def inventory_db(self) -> str:
        return self.service_databases["inventory_svc"]

    @property
    def amqp_url(self) -> str:
        return self.balancer.url(self.vhost)

    def database_of(self, service: str) -> str:
        return self.service_databases[service]

    def replicas_of(self, service: str) -> list[Replica]:
        return [r for r in self.replicas if r.service == service]

    async def start(self) -> None:
        await asyncio.to_thread(self.cluster.nodes[0].add_vhost, self.vhost)
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
            f"{prefix}_DATABASE_URL": self.database_of(service),
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

    async def close(self) -> None:
        """Stop the services, keep the servers' logs beside theirs, leave the servers whole and
        remove the run's databases and vhost."""
        for replica in self.replicas:
            replica.process.kill()
        kept = self.log_dir / "servers"
        for log in self.run.root.glob("*/**/*.log"):
            target = kept / log.relative_to(self.run.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, target)
        await asyncio.to_thread(self.cluster.make_whole)
        await asyncio.to_thread(self.databases.make_whole)
        for url in self.service_databases.values():
            await drop_database(url)
        await asyncio.to_thread(self.cluster.nodes[0].ctl, "delete_vhost", self.vhost)
