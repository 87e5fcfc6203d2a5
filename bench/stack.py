"""The services as real processes (`python -m user_svc [role]`, ...), as in production: each
service in the `all` role, or split into its `api`, `worker` and `relay` roles.

Factored from the idea of `tests/support/processes.py` rather than imported, so the bench does not
depend on test helpers. Users are registered and logged in over HTTP (`POST /users`,
`POST /auth/token`): the bench never signs a token itself, so it keeps working whatever the
services' token signing becomes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.infra import Resources

ROOT = Path(__file__).resolve().parents[1]
# The one user whose tokens carry the `admin` role: it sets the stock the orders reserve.
ADMIN_EMAIL = "bench-admin@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 (throwaway users of a throwaway database)
# Limits the bench never reaches: it registers and logs in many users from one address, and wrk
# reads as fast as it can with one token. Every request is still counted (in process memory),
# so the figures include what limiting costs. The results record these settings.
RATE_LIMITS = {
    **dict.fromkeys(
        (
            "LOGIN_RATE_LIMIT",
            "LOGIN_ACCOUNT_RATE_LIMIT",
            "REGISTRATION_RATE_LIMIT",
            "REGISTRATION_ACCOUNT_RATE_LIMIT",
        ),
        "1000000/minute",
    ),
    "RATE_LIMIT_READS": "1000000/second",
    "RATE_LIMIT_WRITES": "1000000/second",
    "RATE_LIMITS": "",
    "RATE_LIMIT_STORAGE_URL": "",
}
CREDIT_LIMIT = 10**15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    module: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self, within: float = 90, path: str = "/readyz") -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient() as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.module} exited: see {self.log_path}")
                try:
                    if (await client.get(f"{self.url}{path}")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.module} not ready after {within}s")
                await asyncio.sleep(0.1)


@dataclass
class Customer:
    id: uuid.UUID
    token: str


@dataclass
class Stack:
    """Where each service's API answers, and every process of the stack by name (for the CPU
    and memory each spends)."""

    user_svc: Service
    order_svc: Service
    inventory_svc: Service
    amqp_url: str
    processes: dict[str, Service]

    def stop(self, resources: Resources) -> None:
        for service in self.processes.values():
            resources.stop(service.process)


def spawn(
    resources: Resources,
    module: str,
    env: dict[str, str],
    port: int,
    log_dir: Path,
    args: Sequence[str] = (),
    *,
    name: str | None = None,
) -> Service:
    log_path = log_dir / f"{name or module}.log"
    with log_path.open("ab") as log:
        process = resources.track(
            subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env={**os.environ, **env},
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        )
    return Service(module, port, process, log_path)


async def start(resources: Resources, log_dir: Path) -> Stack:
    """Every service in the `all` role, on fresh databases (created and migrated by the services
    themselves) and a fresh vhost."""
    return await _start(resources, log_dir, label="stack", roles=("all",))


async def start_roles(resources: Resources, log_dir: Path) -> Stack:
    """Each service as three processes, `api`, `worker` and `relay`, on fresh databases brought
    to head by a `migrate` run first (as a deployment does) and a fresh vhost."""
    return await _start(resources, log_dir, label="roles", roles=("api", "worker", "relay"))


async def _start(resources: Resources, log_dir: Path, *, label: str, roles: Sequence[str]) -> Stack:
    amqp_url = resources.vhost(label)
    user_port, order_port, inventory_port = free_port(), free_port(), free_port()
    common = {"AMQP_URL": amqp_url, "LOG_FORMAT": "json", **RATE_LIMITS}
    envs = {
        "user_svc": {
            **common,
            # Tokens outlive the longest run.
            "ACCESS_TOKEN_TTL_SECONDS": "7200",
            "USER_SVC_PORT": str(user_port),
            "USER_SVC_DATABASE_URL": await resources.database(f"{label}_user"),
            "USER_DEFAULT_CREDIT_LIMIT": str(CREDIT_LIMIT),
            "ADMIN_EMAILS": ADMIN_EMAIL,
        },
        "order_svc": {
            **common,
            "ORDER_SVC_PORT": str(order_port),
            "ORDER_SVC_DATABASE_URL": await resources.database(f"{label}_order"),
            # Where order_svc finds user_svc's token keys (JWKS).
            "USER_SVC_PORT": str(user_port),
            "JWKS_URL": f"http://127.0.0.1:{user_port}/.well-known/jwks.json",
        },
        "inventory_svc": {
            **common,
            "INVENTORY_SVC_PORT": str(inventory_port),
            "INVENTORY_SVC_DATABASE_URL": await resources.database(f"{label}_inventory"),
            "USER_SVC_PORT": str(user_port),
            "JWKS_URL": f"http://127.0.0.1:{user_port}/.well-known/jwks.json",
        },
    }
    service_ports = {
        "user_svc": user_port,
        "order_svc": order_port,
        "inventory_svc": inventory_port,
    }
    if "all" not in roles:
        await asyncio.gather(*(migrate(module, env) for module, env in envs.items()))
    processes: dict[str, Service] = {}
    apis: dict[str, Service] = {}
    for module, env in envs.items():
        for role in roles:
            name = module if role == "all" else f"{module}-{role}"
            serves_api = role in ("all", "api")
            port = service_ports[module] if serves_api else free_port()
            ops = {} if serves_api else {"OPS_PORT": str(port)}
            service = spawn(resources, module, {**env, **ops}, port, log_dir, (role,), name=name)
            processes[name] = service
            if serves_api:
                apis[module] = service
    await asyncio.gather(*(service.wait_ready() for service in processes.values()))
    return Stack(
        user_svc=apis["user_svc"],
        order_svc=apis["order_svc"],
        inventory_svc=apis["inventory_svc"],
        amqp_url=amqp_url,
        processes=processes,
    )


async def migrate(module: str, env: dict[str, str]) -> None:
    """`python -m <module> migrate`, as a deployment's migration job runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        "migrate",
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{module} migrate failed ({process.returncode}): {output.decode()}")


async def register(stack: Stack, count: int, *, concurrency: int = 4) -> list[Customer]:
    """`count` users, registered and logged in over HTTP like any client."""
    slots = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient) -> Customer:
        async with slots:
            return await _register(client, f"bench-{uuid.uuid4().hex}@example.com")

    async with httpx.AsyncClient(base_url=stack.user_svc.url, timeout=60) as client:
        return list(await asyncio.gather(*(one(client) for _ in range(count))))


async def administrator(stack: Stack) -> Customer:
    """The administrator (`ADMIN_EMAIL`), registered and logged in."""
    async with httpx.AsyncClient(base_url=stack.user_svc.url, timeout=60) as client:
        return await _register(client, ADMIN_EMAIL)


async def _register(client: httpx.AsyncClient, email: str) -> Customer:
    created = await client.post(
        "/users", json={"email": email, "name": "Bench User", "password": PASSWORD}
    )
    if created.status_code != 201:
        raise RuntimeError(f"registration failed: {created.status_code} {created.text}")
    login = await client.post("/auth/token", data={"username": email, "password": PASSWORD})
    if login.status_code != 200:
        raise RuntimeError(f"login failed: {login.status_code} {login.text}")
    return Customer(id=uuid.UUID(created.json()["id"]), token=login.json()["access_token"])
