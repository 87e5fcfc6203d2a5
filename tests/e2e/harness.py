"""The end-to-end stack: user_svc, order_svc and inventory_svc as real processes on fresh
databases and a fresh vhost, and the customers who use it over HTTP.

The services are started exactly as in production (`tests/support/processes.py`), so these tests
cover database creation, migrations, topology declaration, relay and consumers, over real HTTP
and real AMQP. Helpers here poll conditions with deadlines; no test sleeps blindly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from tests.support.processes import ServiceProcess, free_port
from tests.support.settings import JWT_SECRET, NO_RATE_LIMITS, SIGNING_KEY
from tests.support.waiting import eventually

CREDIT_LIMIT = 100_000
PASSWORD = "correct horse"


@dataclass
class Stack:
    amqp_url: str
    user_db: str
    order_db: str
    inventory_db: str
    log_dir: Path
    # Listed in ADMIN_EMAILS as an operator might write it: case and spaces as they come.
    admin_email: str = field(default_factory=lambda: f"admin-{uuid.uuid4().hex[:10]}@example.com")
    user_svc: ServiceProcess = field(init=False)
    order_svc: ServiceProcess = field(init=False)
    inventory_svc: ServiceProcess = field(init=False)

    def __post_init__(self) -> None:
        common = {"AMQP_URL": self.amqp_url, "RELAY_POLL_SECONDS": "0.5"}
        user_port, order_port, inventory_port = free_port(), free_port(), free_port()
        self.user_svc = ServiceProcess(
            "user_svc",
            {
                **common,
                **NO_RATE_LIMITS,
                "JWT_SECRET": JWT_SECRET,
                "USER_SVC_PORT": str(user_port),
                "USER_SVC_DATABASE_URL": self.user_db,
                "USER_DEFAULT_CREDIT_LIMIT": str(CREDIT_LIMIT),
                "ADMIN_EMAILS": f"someone@example.com, {self.admin_email.upper()}",
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
        self.inventory_svc = ServiceProcess(
            "inventory_svc",
            {
                **common,
                **NO_RATE_LIMITS,
                "INVENTORY_SVC_PORT": str(inventory_port),
                "INVENTORY_SVC_DATABASE_URL": self.inventory_db,
                "USER_SVC_PORT": str(user_port),
            },
            inventory_port,
            self.log_dir / "inventory_svc.log",
        )

    @property
    def services(self) -> tuple[ServiceProcess, ...]:
        return (self.user_svc, self.order_svc, self.inventory_svc)

    @property
    def databases(self) -> tuple[str, ...]:
        return (self.user_db, self.order_db, self.inventory_db)

    async def start(self) -> None:
        for service in self.services:
            service.start()
        await asyncio.gather(*(service.wait_ready() for service in self.services))

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def kill(self) -> None:
        for service in self.services:
            service.kill()


@dataclass
class Customer:
    """A registered, logged-in user of the stack, with clients for both services."""

    id: uuid.UUID
    email: str
    token: str
    users: httpx.AsyncClient
    orders: httpx.AsyncClient
    inventory: httpx.AsyncClient

    async def place_order(self, total: int, **headers: str) -> dict[str, Any]:
        return await self.order_lines([("SKU-1", 1, total)], **headers)

    async def order_lines(
        self, lines: list[tuple[str, int, int]], **headers: str
    ) -> dict[str, Any]:
        """Place an order of (sku, quantity, unit_price) lines."""
        response = await self.orders.post(
            "/orders",
            json={"items": [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in lines]},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def stock(self, sku: str) -> dict[str, Any]:
        response = await self.inventory.get(f"/stock/{quote(sku, safe='')}")
        assert response.status_code == 200, response.text
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
        await self.inventory.aclose()


async def register(stack: Stack) -> Customer:
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    async with httpx.AsyncClient(base_url=stack.user_svc.url) as client:
        created = await client.post(
            "/users", json={"email": email, "name": "Test User", "password": PASSWORD}
        )
        assert created.status_code == 201, created.text
    return await sign_in(stack, email)


async def sign_in_admin(stack: Stack) -> Customer:
    """The stack's administrator (registered by the first call), signed in."""
    async with httpx.AsyncClient(base_url=stack.user_svc.url) as client:
        created = await client.post(
            "/users", json={"email": stack.admin_email, "name": "Admin", "password": PASSWORD}
        )
        assert created.status_code in (201, 409), created.text
    return await sign_in(stack, stack.admin_email)


async def sign_in(stack: Stack, email: str) -> Customer:
    async with httpx.AsyncClient(base_url=stack.user_svc.url) as client:
        login = await client.post("/auth/token", data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    return Customer(
        id=uuid.UUID(claims["sub"]),
        email=email,
        token=token,
        users=authorized(stack.user_svc.url, token),
        orders=authorized(stack.order_svc.url, token),
        inventory=authorized(stack.inventory_svc.url, token),
    )


def authorized(base_url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"})


def token_for(user_id: uuid.UUID) -> str:
    """A valid token for any user id (the tests know the signing secret)."""
    return SIGNING_KEY.issue(user_id, ttl_seconds=600)
