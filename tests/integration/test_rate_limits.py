"""Login and registration are rate-limited per client and per account (OWASP API4)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from user_svc.app import create_app
from user_svc.settings import UserSettings

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
UNLIMITED = "1000/minute"

Client = Callable[[str], httpx.AsyncClient]


def user_app(user_db: str, **limits: str) -> FastAPI:
    settings = {
        "LOGIN_RATE_LIMIT": UNLIMITED,
        "LOGIN_ACCOUNT_RATE_LIMIT": UNLIMITED,
        "REGISTRATION_RATE_LIMIT": UNLIMITED,
        "REGISTRATION_ACCOUNT_RATE_LIMIT": UNLIMITED,
        **limits,
    }
    return create_app(UserSettings(USER_SVC_DATABASE_URL=user_db, **settings))  # type: ignore[arg-type]


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[FastAPI], Client]]:
    """HTTP clients of one app, each from its own address."""
    opened: list[httpx.AsyncClient] = []

    def of(app: FastAPI) -> Client:
        def client(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40_000))
            opened.append(httpx.AsyncClient(transport=transport, base_url="http://user_svc"))
            return opened[-1]

        return client

    yield of
    for client in opened:
        await client.aclose()


async def register(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/users", json={"email": email, "name": "Ada", "password": PASSWORD})


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/auth/token", data={"username": email, "password": password})


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["status"] == 429


async def test_logins_over_the_per_client_limit_get_429_with_retry_after(
    user_db: str, clients: Callable[[FastAPI], Client]
) -> None:
    client = clients(user_app(user_db, LOGIN_RATE_LIMIT="3/minute"))("10.0.0.1")

    answers = [await login(client, "nobody@example.com", "wrong password") for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    assert_rate_limited(answers[3])


async def test_one_clients_logins_do_not_limit_another_client(
    user_db: str, clients: Callable[[FastAPI], Client]
) -> None:
    client = clients(user_app(user_db, LOGIN_RATE_LIMIT="2/minute"))
    for _ in range(3):
        await login(client("10.0.0.1"), "nobody@example.com", "wrong password")

    answer = await login(client("10.0.0.2"), "nobody@example.com", "wrong password")

    assert answer.status_code == 401


async def test_failed_logins_lock_the_account_even_from_other_clients_and_the_right_password(
    user_db: str, clients: Callable[[FastAPI], Client]
) -> None:
    client = clients(user_app(user_db, LOGIN_ACCOUNT_RATE_LIMIT="3/minute"))
    assert (await register(client("10.0.0.9"), "ada@example.com")).status_code == 201
    for number in range(3):
        await login(client(f"10.0.1.{number}"), "ada@example.com", "wrong password")

    answer = await login(client("10.0.2.1"), "ada@example.com")

    assert_rate_limited(answer)


async def test_successful_logins_do_not_count_against_the_account(
    user_db: str, clients: Callable[[FastAPI], Client]
) -> None:
    client = clients(user_app(user_db, LOGIN_ACCOUNT_RATE_LIMIT="2/minute"))("10.0.0.1")
    assert (await register(client, "ada@example.com")).status_code == 201

    answers = [await login(client, "ada@example.com") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 200]


async def test_failed_logins_for_one_account_do_not_lock_another(
    user_db: str, clients: Callable[[FastAPI], Client]
) -> None:
    client = clients(user_app(user_db, LOGIN_ACCOUNT_RATE_LIMIT="2/minute"))("10.0.0.1")
    assert (await register(client, "ada@example.com")).status_code == 201
    for _ in range(3):
        await login(client, "eve@example.com", "wrong password")

    assert (await login(client, "ada@example.com")).status_code == 200


async def test_an_unknown_email_is_limited_like_a_known_one(
    user_db: str, clients: Callable[[FastAPI], Client]
) -> None:
    """The limit must not tell an attacker which emails have accounts."""
    client = clients(user_app(user_db, LOGIN_ACCOUNT_RATE_LIMIT="2/minute"))("10.0.0.1")
    assert (await register(client, "ada@example.com")).status_code == 201

    known = [await login(client, "ada@example.com", "wrong password") for _ in range(3)]
    unknown = [await login(client, "eve@example.com", "wrong password") for _ in range(3)]

    assert [a.status_code for a in known] == [a.status_code for a in unknown] == [401, 401, 429]


async def test_registrations_over_the_per_client_limit_get_429(
    user_db: str, clients: Callable[[FastAPI], Client]
) -> None:
    client = clients(user_app(user_db, REGISTRATION_RATE_LIMIT="2/minute"))("10.0.0.1")

    answers = [await register(client, f"user{n}@example.com") for n in range(3)]

    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert_rate_limited(answers[2])


async def test_registrations_for_one_email_are_limited_from_any_client(
    user_db: str, clients: Callable[[FastAPI], Client]
) -> None:
    client = clients(user_app(user_db, REGISTRATION_ACCOUNT_RATE_LIMIT="2/minute"))
    answers = [await register(client(f"10.0.0.{n}"), "ada@example.com") for n in range(3)]

    assert [a.status_code for a in answers[:2]] == [201, 409]
    assert_rate_limited(answers[2])
