"""Tokens across the two services: user_svc signs and publishes its public key, order_svc
verifies with what user_svc publishes and nothing else."""

from __future__ import annotations

import httpx
import jwt
import pytest

from shared.web.tokens import SigningKey
from tests.e2e.harness import Customer, Stack, authorized, register, sign_in_admin
from tests.support.settings import SIGNING_KEY

pytestmark = pytest.mark.e2e


async def test_user_svc_publishes_its_signing_key_without_the_private_part(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.user_svc.url) as client:
        response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.json()["keys"] == [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": response.json()["keys"][0]["x"],
            "kid": SIGNING_KEY.kid,
            "alg": "EdDSA",
            "use": "sig",
        }
    ]


async def test_order_svc_accepts_the_token_user_svc_issued_at_login(customer: Customer) -> None:
    response = await customer.orders.get("/orders")

    assert response.status_code == 200


async def test_order_svc_refuses_a_token_signed_by_a_key_user_svc_does_not_publish(
    stack: Stack, customer: Customer
) -> None:
    forger = SigningKey.from_secret("a-key-nobody-published-0123456789abcdef")

    async with authorized(stack.order_svc.url, forger.issue(customer.id, ttl_seconds=60)) as c:
        response = await c.get("/orders")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_order_svc_refuses_an_expired_token(stack: Stack, customer: Customer) -> None:
    async with authorized(stack.order_svc.url, SIGNING_KEY.issue(customer.id, ttl_seconds=-1)) as c:
        response = await c.get("/orders")

    assert response.status_code == 401


async def test_the_token_of_a_user_listed_in_admin_emails_carries_the_admin_role(
    stack: Stack,
) -> None:
    admin = await sign_in_admin(stack)
    try:
        claims = jwt.decode(admin.token, options={"verify_signature": False})
    finally:
        await admin.close()

    assert claims["roles"] == ["admin"]


async def test_the_token_of_any_other_user_carries_no_roles(customer: Customer) -> None:
    claims = jwt.decode(customer.token, options={"verify_signature": False})

    assert "roles" not in claims
    assert set(claims) == {"sub", "iss", "aud", "iat", "exp"}


async def test_neither_service_logs_a_token_or_a_password(stack: Stack) -> None:
    customer = await register(stack)
    async with httpx.AsyncClient(base_url=stack.user_svc.url) as client:
        await client.post(
            "/auth/token", data={"username": customer.email, "password": "a wrong guess 123"}
        )
    await customer.orders.get("/orders")
    await customer.users.get("/users/me")
    await customer.close()

    logs = stack.user_svc.log_path.read_text() + stack.order_svc.log_path.read_text()

    assert customer.token not in logs
    assert customer.token.split(".")[2] not in logs
    assert "correct horse" not in logs
    assert "a wrong guess 123" not in logs
