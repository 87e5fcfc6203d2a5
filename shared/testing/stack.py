"""The stack a test runs against: every service started as a process of its own, on databases and
a vhost made for it, or an already running stack found at the URLs given.

Started, each service runs from the installed package exactly as in production (`python -m
<package>`, role `all`): it creates and migrates its own database, declares the broker
topology and serves HTTP, with its relay and consumers, on a free port. The databases and the
vhost carry a random name, so stacks of concurrent runs on one PostgreSQL and one RabbitMQ never
meet, and stopping the stack removes them. Only the port, database and broker of each service,
and the token signing secret, are set here; every other variable of the caller's environment
reaches the services as it is (`RATE_LIMIT_WRITES`, `ADMIN_EMAILS`, `LOG_FORMAT`, ...).

The services are data (`SERVICES`): the contract names each one's variables after its package
(`<PACKAGE>_PORT`, `<PACKAGE>_DATABASE_URL`), and every process is told every service's port, which
is how order_svc finds user_svc's token keys.

A vhost can only be made by an administrator, with `rabbitmqctl` where the broker runs (or a
command reaching it, such as `docker exec <container> rabbitmqctl`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from shared.persistence.database import drop_database, with_database
from shared.testing.waiting import eventually

READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
RABBITMQCTL_TIMEOUT_SECONDS = 120.0
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class Service:
    """A service of the stack, known by its package (`python -m <package>` runs it)."""

    package: str

    @property
    def port_variable(self) -> str:
        return f"{self.package.upper()}_PORT"

    @property
    def database_variable(self) -> str:
        return f"{self.package.upper()}_DATABASE_URL"


SERVICES: tuple[Service, ...] = (
    Service("user_svc"),
    Service("order_svc"),
    Service("inventory_svc"),
)
ACCOUNTS_SERVICE = "user_svc"
"""Where users register and get their tokens."""


@dataclass(frozen=True)
class Stack:
    """Where a running stack is: each service's base URL by package, and its broker (vhost
    included)."""

    urls: Mapping[str, str]
    amqp_url: str

    def url(self, service: str) -> str:
        try:
            return self.urls[service]
        except KeyError:
            known = ", ".join(self.urls)
            raise KeyError(f"no service {service!r} in the stack; it has {known}") from None


async def wait_ready(stack: Stack, *, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Return once every service answers `GET /readyz` with 200 (database and broker reached)."""
    async with httpx.AsyncClient() as client:
        for service, url in stack.urls.items():

            async def ready(url: str = url) -> bool:
                try:
                    return (await client.get(f"{url}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=timeout, what=f"{service} ready at {url}/readyz")


@dataclass
class ServiceProcess:
    service: Service
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.service.package],
                env=self.env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float) -> None:
        process = self.process
        if process is None:
            raise RuntimeError(f"{self.service.package} was not started")

        async def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{self.service.package} exited with status {process.returncode} before it "
                    f"was ready; {self.log_tail()}"
                )
            try:
                return (await client.get(f"{self.url}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        async with httpx.AsyncClient() as client:
            try:
                await eventually(ready, timeout=timeout, what=f"{self.service.package} ready")
            except AssertionError as error:
                raise RuntimeError(f"{error}; {self.log_tail()}") from None

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops it; SIGKILL if it has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except FileNotFoundError:
            lines = []
        return f"the end of its log ({self.log_path}):\n" + "\n".join(lines)


@dataclass
class StartedStack:
    """The services as processes of this one, on databases and a vhost of their own.

    `start` returns the `Stack`; `stop` ends the processes and removes the databases and the
    vhost, whatever `start` got to.
    """

    postgres_url: str
    """The PostgreSQL server (its database part is replaced by each service's own)."""
    amqp_url: str
    """The broker, as an account that `rabbitmqctl` gives every permission on the new vhost."""
    log_dir: Path
    rabbitmqctl: Sequence[str] = ("rabbitmqctl",)
    services: Sequence[Service] = SERVICES
    ready_timeout: float = READY_TIMEOUT_SECONDS
    name: str = field(default_factory=lambda: f"eventful_test_{secrets.token_hex(4)}")
    processes: list[ServiceProcess] = field(default_factory=list)
    _vhost_made: bool = False

    @property
    def vhost(self) -> str:
        return self.name

    @property
    def vhost_url(self) -> str:
        return urlunsplit(urlsplit(self.amqp_url)._replace(path=f"/{quote(self.vhost, safe='')}"))

    def database_url(self, service: Service) -> str:
        return with_database(self.postgres_url, f"{self.name}_{service.package}")

    async def start(self) -> Stack:
        user = unquote(urlsplit(self.amqp_url).username or "guest")
        await self._rabbitmqctl("add_vhost", self.vhost)
        self._vhost_made = True
        await self._rabbitmqctl("set_permissions", "-p", self.vhost, user, ".*", ".*", ".*")
        ports = {service: _free_port() for service in self.services}
        common = {
            **os.environ,
            "AMQP_URL": self.vhost_url,
            "JWT_SECRET": secrets.token_urlsafe(32),
            **{service.port_variable: str(port) for service, port in ports.items()},
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for service, port in ports.items():
            process = ServiceProcess(
                service=service,
                env={**common, service.database_variable: self.database_url(service)},
                port=port,
                log_path=self.log_dir / f"{service.package}.log",
            )
            self.processes.append(process)
            process.start()
        await asyncio.gather(*(p.wait_ready(self.ready_timeout) for p in self.processes))
        return Stack(
            urls={p.service.package: p.url for p in self.processes}, amqp_url=self.vhost_url
        )

    async def stop(self) -> None:
        """Every step is tried; the first failure is raised after the others ran."""
        failures: list[BaseException] = []
        stopped = await asyncio.gather(
            *(asyncio.to_thread(p.stop) for p in self.processes), return_exceptions=True
        )
        failures += [result for result in stopped if isinstance(result, BaseException)]
        for process in self.processes:  # each started service created its database
            try:
                await drop_database(self.database_url(process.service))
            except Exception as error:
                failures.append(error)
        if self._vhost_made:
            try:
                await self._rabbitmqctl("delete_vhost", self.vhost)
            except Exception as error:
                failures.append(error)
            else:
                self._vhost_made = False
        if failures:
            raise failures[0]

    async def _rabbitmqctl(self, *arguments: str) -> None:
        command = [*self.rabbitmqctl, "-q", *arguments]
        try:
            done = await asyncio.to_thread(
                subprocess.run,
                command,
                capture_output=True,
                text=True,
                timeout=RABBITMQCTL_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError as error:
            raise RuntimeError(
                f"{command[0]} not found: the stack makes its vhost with rabbitmqctl, so give a "
                "command that reaches the broker's (such as docker exec <container> rabbitmqctl)"
            ) from error
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {output}")


def _free_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])
