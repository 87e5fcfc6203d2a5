"""Runs user_svc and order_svc as real processes against fresh databases and a fresh vhost.

The services are started exactly as in production (`python -m user_svc`), so these tests cover
database creation, migrations, topology declaration, relay and consumers, over real HTTP and
real AMQP. Helpers here poll conditions with deadlines; no test sleeps blindly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import httpx

from shared.auth import SigningKey

JWT_SECRET = "end-to-end-test-secret-0123456789abcdef"
# The key user_svc derives from JWT_SECRET: tests mint tokens for users only order_svc knows.
SIGNING_KEY = SigningKey.from_secret(JWT_SECRET)
# Test stacks register and log in many users, and place and poll many orders, from one address.
NO_RATE_LIMITS = dict.fromkeys(
    (
        "LOGIN_RATE_LIMIT",
        "LOGIN_ACCOUNT_RATE_LIMIT",
        "REGISTRATION_RATE_LIMIT",
        "REGISTRATION_ACCOUNT_RATE_LIMIT",
        "RATE_LIMIT_READS",
        "RATE_LIMIT_WRITES",
    ),
    "1000000/minute",
)
CREDIT_LIMIT = 100_000
ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    module: str
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **overrides: str) -> None:
        env = {**os.environ, **self.env, **overrides}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=env, cwd=ROOT, stdout=log, stderr=log
        )
        log.close()

    async def wait_ready(self, timeout: float = 60) -> None:
        async def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited: see {self.log_path}")
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.url}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=timeout, what=f"{self.module} ready")

    def stop(self) -> None:
        """Graceful stop (SIGTERM), as an orchestrator would do it."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """Sudden death (SIGKILL): no shutdown code runs."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@dataclass
class Stack:
    amqp_url: str
    user_db: str
    order_db: str
    log_dir: Path
    user_svc: ServiceProcess = field(init=False)
    order_svc: ServiceProcess = field(init=False)

    def __post_init__(self) -> None:
        common = {"AMQP_URL": self.amqp_url, "RELAY_POLL_SECONDS": "0.5", **NO_RATE_LIMITS}
        user_port, order_port = free_port(), free_port()
        self.user_svc = ServiceProcess(
            "user_svc",
            {
                **common,
                "JWT_SECRET": JWT_SECRET,
                "USER_SVC_PORT": str(user_port),
                "USER_SVC_DATABASE_URL": self.user_db,
                "USER_DEFAULT_CREDIT_LIMIT": str(CREDIT_LIMIT),
            },
            user_port,
            self.log_dir / "user_svc.log",
        )
        self.order_svc = ServiceProcess(
            "order_svc",
            {
                **common,
                "ORDER_SVC_PORT": str(order_port),
                "ORDER_SVC_DATABASE_URL": self.order_db,
                "USER_SVC_PORT": str(user_port),
            },
            order_port,
            self.log_dir / "order_svc.log",
        )

    async def start(self) -> None:
        self.user_svc.start()
        self.order_svc.start()
        await asyncio.gather(self.user_svc.wait_ready(), self.order_svc.wait_ready())

    def stop(self) -> None:
        self.order_svc.stop()
        self.user_svc.stop()


@dataclass
class Customer:
    """A registered, logged-in user of the stack, with clients for both services."""

    id: uuid.UUID
    email: str
    token: str
    users: httpx.AsyncClient
    orders: httpx.AsyncClient

    async def place_order(self, total: int, **headers: str) -> dict[str, Any]:
        response = await self.orders.post(
            "/orders",
            json={"items": [{"sku": "SKU-1", "quantity": 1, "unit_price": total}]},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.orders.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def me(self) -> dict[str, Any]:
        response = await self.users.get("/users/me")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def order_reaches(self, order_id: str, status: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            order = await self.order(order_id)
            return order if order["status"] == status else None

        return await eventually(reached, what=f"order {order_id} {status}")

    async def cancel(self, order: Mapping[str, Any]) -> httpx.Response:
        return await self.orders.post(
            f"/orders/{order['id']}/cancel", headers={"If-Match": f'"{order["version"]}"'}
        )

    async def close(self) -> None:
        await self.users.aclose()
        await self.orders.aclose()


async def register(stack: Stack) -> Customer:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    async with httpx.AsyncClient(base_url=stack.user_svc.url) as client:
        created = await client.post(
            "/users", json={"email": email, "name": "Test User", "password": "correct horse"}
        )
        assert created.status_code == 201, created.text
        login = await client.post(
            "/auth/token", data={"username": email, "password": "correct horse"}
        )
        assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    return Customer(
        id=uuid.UUID(created.json()["id"]),
        email=email,
        token=token,
        users=authorized(stack.user_svc.url, token),
        orders=authorized(stack.order_svc.url, token),
    )


def authorized(base_url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"})


def token_for(user_id: uuid.UUID) -> str:
    """A valid token for any user id (the tests know the signing secret)."""
    return SIGNING_KEY.issue(user_id, ttl_seconds=600)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 30, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def cloud_event(
    event_type: str,
    data: Mapping[str, Any],
    *,
    subject: uuid.UUID,
    version: int,
    event_id: uuid.UUID | None = None,
) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(event_id or uuid.uuid4()),
            "source": "/tests",
            "type": event_type,
            "subject": str(subject),
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "aggregateversion": version,
            "data": dict(data),
        }
    ).encode()


async def publish(amqp_url: str, routing_key: str, body: bytes, message_id: str = "") -> None:
    """Publish onto `events` like any outside program would: a plain AMQP client."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("events")
        await exchange.publish(
            aio_pika.Message(
                body,
                message_id=message_id or None,
                type=routing_key,
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=routing_key,
        )


async def dead_letters(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Everything in `queue` right now (messages are requeued, not consumed)."""
    connection = await aio_pika.connect(amqp_url)
    messages = []
    async with connection:
        channel = await connection.channel()
        declared = await channel.get_queue(queue)
        while (message := await declared.get(fail=False)) is not None:
            messages.append(message)
        for message in messages:
            await message.nack(requeue=True)
    return messages
