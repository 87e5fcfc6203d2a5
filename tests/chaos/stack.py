"""Two replicas of each service, each reaching PostgreSQL and RabbitMQ through its own proxies
(inventory_svc's too: every order waits for its answer).

Replicas of a service share their database, their queue and their inbox, and differ only in
their HTTP port and their proxies, so a network fault can hit one replica's link to one server
while the other replica keeps working. The test itself (load generator, checker, outside
publisher) talks to the servers directly. The servers are the session's private ones, which
the faults restart; databases and the vhost are new for every run and removed afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url

from shared.persistence.database import drop_database
from tests.support.processes import ServiceProcess, free_port
from tests.support.proxy import TcpProxy
from tests.support.servers.postgres import PostgresNode
from tests.support.servers.rabbitmq import RabbitNode
from tests.support.settings import ADMIN_EMAIL, JWT_SECRET, NO_RATE_LIMITS, SIGNING_KEY

SERVICES = ("user_svc", "order_svc", "inventory_svc")
REPLICAS_PER_SERVICE = 2
READY_TIMEOUT_SECONDS = 240
"""Six replicas importing and migrating at once on a shared, busy two-core machine took more
than two minutes."""


@dataclass(eq=False)
class Replica:
    name: str
    """e.g. `order_svc-2`"""
    service: str
    process: ServiceProcess
    database: TcpProxy
    broker: TcpProxy

    @property
    def url(self) -> str:
        return self.process.url


@dataclass
class ChaosStack:
    log_dir: Path
    credit_limit: int
    postgres: PostgresNode
    rabbitmq: RabbitNode
    mark: dict[str, str]
    """The private servers' mark: the replicas are removed with them, even after a SIGKILL."""
    vhost: str = field(init=False)
    amqp_url: str = field(init=False)
    user_db: str = field(init=False)
    order_db: str = field(init=False)
    inventory_db: str = field(init=False)
    replicas: list[Replica] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        suffix = uuid.uuid4().hex[:12]
        self.vhost = f"chaos-{suffix}"
        self.amqp_url = self.rabbitmq.add_vhost(self.vhost)
        self.user_db = f"{self.postgres.base_url()}/chaos_user_svc_{suffix}"
        self.order_db = f"{self.postgres.base_url()}/chaos_order_svc_{suffix}"
        self.inventory_db = f"{self.postgres.base_url()}/chaos_inventory_svc_{suffix}"

    def database_of(self, service: str) -> str:
        return {
            "user_svc": self.user_db,
            "order_svc": self.order_db,
            "inventory_svc": self.inventory_db,
        }[service]

    def replicas_of(self, service: str) -> list[Replica]:
        return [r for r in self.replicas if r.service == service]

    @property
    def proxies(self) -> list[TcpProxy]:
        return [p for r in self.replicas for p in (r.database, r.broker)]

    @property
    def public_keys_file(self) -> Path:
        """order_svc replicas verify tokens with this file, as a deployment that does not want
        them to depend on user_svc being up would configure them."""
        return self.log_dir / "token-keys.pem"

    async def start(self) -> None:
        self.public_keys_file.write_bytes(SIGNING_KEY.public_pem)
        for service in SERVICES:
            for number in range(1, REPLICAS_PER_SERVICE + 1):
                database = TcpProxy(self.postgres.port)
                broker = TcpProxy(self.rabbitmq.amqp_port, upstream_host=self.rabbitmq.address)
                await database.start()
                await broker.start()
                name = f"{service}-{number}"
                self.replicas.append(
                    Replica(
                        name=name,
                        service=service,
                        process=self._process(service, name, database, broker),
                        database=database,
                        broker=broker,
                    )
                )
        # Replicas of a service start together and migrate under an advisory lock.
        for replica in self.replicas:
            replica.process.start()
        await asyncio.gather(
            *(r.process.wait_ready(timeout=READY_TIMEOUT_SECONDS) for r in self.replicas)
        )

    def _process(
        self, service: str, name: str, database: TcpProxy, broker: TcpProxy
    ) -> ServiceProcess:
        prefix = service.upper()
        database_url = make_url(self.database_of(service)).set(host="127.0.0.1", port=database.port)
        amqp_url = urlsplit(self.amqp_url)
        credentials = amqp_url.netloc.rpartition("@")[0]
        port = free_port()
        env = {
            **self.mark,
            "AMQP_URL": urlunsplit(
                amqp_url._replace(netloc=f"{credentials}@127.0.0.1:{broker.port}")
            ),
            f"{prefix}_DATABASE_URL": database_url.render_as_string(hide_password=False),
            f"{prefix}_PORT": str(port),
            **NO_RATE_LIMITS,
            "JWT_SECRET": JWT_SECRET,
            "JWT_PUBLIC_KEYS_FILE": str(self.public_keys_file),
            "USER_DEFAULT_CREDIT_LIMIT": str(self.credit_limit),
            "ADMIN_EMAILS": ADMIN_EMAIL,
            "RELAY_POLL_SECONDS": "0.5",
            # The checker counts outbox rows: housekeeping must not delete them during the run.
            "OUTBOX_RETENTION_SECONDS": str(7 * 86_400),
        }
        return ServiceProcess(service, env, port, self.log_dir / f"{name}.log")

    async def close(self) -> None:
        for replica in self.replicas:
            replica.process.kill()
        for proxy in self.proxies:
            await proxy.close()
        try:
            await drop_database(self.user_db)
            await drop_database(self.order_db)
            await drop_database(self.inventory_db)
        finally:
            self.rabbitmq.ctl("delete_vhost", self.vhost)
