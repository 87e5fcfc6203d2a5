"""The caller of a route, from its bearer token: who it is, and whether it is an administrator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI

from shared.web.auth import Administrator, CurrentUserId
from shared.web.problems import install_problem_handlers
from shared.web.tokens import ADMIN_ROLE, SigningKey, StaticKeys, TokenVerifier

USER_ID = UUID("00000000-0000-4000-8000-0000000000a1")
KEY = SigningKey.from_secret("unit-test-secret-of-at-least-32-bytes-0001")


def build_app() -> FastAPI:
    app = FastAPI()
    app.state.tokens = TokenVerifier(StaticKeys([KEY.public]))
    install_problem_handlers(app)

    @app.get("/anyone")
    async def anyone(caller: CurrentUserId) -> str:
        return str(caller)

    @app.get("/admins")
    async def admins(caller: Administrator) -> str:
        return str(caller.user_id)

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def bearer(*roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY.issue(USER_ID, ttl_seconds=60, roles=roles)}"}


async def test_an_administrator_passes_the_admin_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/admins", headers=bearer(ADMIN_ROLE))

    assert response.status_code == 200
    assert response.json() == str(USER_ID)


async def test_a_user_without_the_admin_role_is_forbidden(client: httpx.AsyncClient) -> None:
    response = await client.get("/admins", headers=bearer())

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 403


async def test_another_role_is_not_the_admin_role(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admins", headers=bearer("auditor"))).status_code == 403


async def test_an_admin_route_without_a_token_is_unauthorized(client: httpx.AsyncClient) -> None:
    assert (await client.get("/admins")).status_code == 401


async def test_any_signed_in_user_passes_the_user_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/anyone", headers=bearer())

    assert response.status_code == 200
    assert response.json() == str(USER_ID)
