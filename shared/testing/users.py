"""A signed-in user of a stack: registered at user_svc, holding a token, with an HTTP client for
each service that sends it.

Each user has an email of its own (random), so tests never share one and may run against a stack
that others use too. The user is registered and signed in through the public API, as any client
does (`POST /users`, `POST /auth/token`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from uuid import UUID

import httpx

from shared.testing.stack import ACCOUNTS_SERVICE, Stack


class SignUpFailed(RuntimeError):
    """user_svc did not register or sign in the user."""


@dataclass
class SignedIn:
    """A registered user and its bearer token."""

    id: UUID
    email: str
    password: str
    token: str
    stack: Stack
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def client(self, service: str) -> httpx.AsyncClient:
        """An HTTP client of `service` (its package name, such as `order_svc`) that sends the
        user's token; one per service, closed with the user."""
        if service not in self._clients:
            self._clients[service] = httpx.AsyncClient(
                base_url=self.stack.url(service),
                headers={"Authorization": f"Bearer {self.token}"},
            )
        return self._clients[service]

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()


async def sign_up(stack: Stack, *, name: str = "Test User") -> SignedIn:
    """Register a new user on `stack` and sign it in."""
    email = f"test-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(16)
    async with httpx.AsyncClient(base_url=stack.url(ACCOUNTS_SERVICE)) as client:
        registered = await client.post(
            "/users", json={"email": email, "name": name, "password": password}
        )
        _expect(registered, 201, "registering a user")
        token = await client.post("/auth/token", data={"username": email, "password": password})
        _expect(token, 200, "signing in")
    return SignedIn(
        id=UUID(registered.json()["id"]),
        email=email,
        password=password,
        token=token.json()["access_token"],
        stack=stack,
    )


def _expect(response: httpx.Response, status: int, doing: str) -> None:
    if response.status_code != status:
        raise SignUpFailed(
            f"{doing}: {response.request.method} {response.request.url} answered "
            f"{response.status_code}, not {status}: {response.text[:1000]}"
        )
