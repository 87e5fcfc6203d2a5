"""Both services as real processes (`python -m user_svc`, `python -m order_svc`), as in production.

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
PASSWORD = "correct horse battery staple"  # noqa: S105 (throwaway users of a throwaway database)
# Effectively unlimited: the bench registers and logs in many users from one address.
NO_RATE_LIMITS = dict.fromkeys(
    (
        "LOGIN_RATE_LIMIT",
        "LOGIN_ACCOUNT_RATE_LIMIT",
        "REGISTRATION_RATE_LIMIT",
        "REGISTRATION_ACCOUNT_RATE_LIMIT",
    ),
    "1000000/minute",
)
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
    user_svc: Service
    order_svc: Service
    amqp_url: str

    @property
    def services(self) -> tuple[Service, Service]:
        return self.user_svc, self.order_svc


def spawn(
    resources: Resources,
    module: str,
    env: dict[str, str],
    port: int,
    log_dir: Path,
    args: Sequence[str] = (),
) -> Service:
    log_path = log_dir / f"{module}.log"
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
    """Fresh databases (created and migrated by the services themselves) and a fresh vhost."""
    amqp_url = resources.vhost("stack")
    user_db = await resources.database("stack_user")
    order_db = await resources.database("stack_order")
    common = {"AMQP_URL": amqp_url, "LOG_FORMAT": "json"}
    user_port, order_port = free_port(), free_port()
    user_svc = spawn(
        resources,
        "user_svc",
        {
            **common,
            **NO_RATE_LIMITS,
            # Tokens outlive the longest run.
            "ACCESS_TOKEN_TTL_SECONDS": "7200",
            "USER_SVC_PORT": str(user_port),
            "USER_SVC_DATABASE_URL": user_db,
            "USER_DEFAULT_CREDIT_LIMIT": str(CREDIT_LIMIT),
        },
        user_port,
        log_dir,
    )
    order_svc = spawn(
        resources,
        "order_svc",
        {
            **common,
            "ORDER_SVC_PORT": str(order_port),
            "ORDER_SVC_DATABASE_URL": order_db,
            # Where order_svc finds user_svc's token keys (JWKS).
            "USER_SVC_PORT": str(user_port),
            "JWKS_URL": f"http://127.0.0.1:{user_port}/.well-known/jwks.json",
        },
        order_port,
        log_dir,
    )
    await asyncio.gather(user_svc.wait_ready(), order_svc.wait_ready())
    return Stack(user_svc=user_svc, order_svc=order_svc, amqp_url=amqp_url)


async def register(stack: Stack, count: int, *, concurrency: int = 4) -> list[Customer]:
    """`count` users, registered and logged in over HTTP like any client."""
    slots = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient) -> Customer:
        email = f"bench-{uuid.uuid4().hex}@example.com"
        async with slots:
            created = await client.post(
                "/users", json={"email": email, "name": "Bench User", "password": PASSWORD}
            )
            if created.status_code != 201:
                raise RuntimeError(f"registration failed: {created.status_code} {created.text}")
            login = await client.post("/auth/token", data={"username": email, "password": PASSWORD})
            if login.status_code != 200:
                raise RuntimeError(f"login failed: {login.status_code} {login.text}")
        return Customer(id=uuid.UUID(created.json()["id"]), token=login.json()["access_token"])

    async with httpx.AsyncClient(base_url=stack.user_svc.url, timeout=60) as client:
        return list(await asyncio.gather(*(one(client) for _ in range(count))))
