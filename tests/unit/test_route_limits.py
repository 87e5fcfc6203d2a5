"""`RATE_LIMITS` as written by an operator, and the rate-limit fields on a crash's answer."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from shared.observability.metrics import Metrics
from shared.settings import ServiceSettings
from shared.web.route_limits import InvalidRateLimits, install_rate_limits, parse_route_limits
from shared.web.tokens import StaticKeys, TokenVerifier


def test_route_limits_are_read_per_method_and_path_template() -> None:
    parsed = parse_route_limits("GET /orders/{order_id}=50/second; POST /orders=10/minute;")

    assert {route: (limit.amount, limit.get_expiry()) for route, limit in parsed.items()} == {
        ("GET", "/orders/{order_id}"): (50, 1),
        ("POST", "/orders"): (10, 60),
    }


def test_no_route_limits_override_nothing() -> None:
    assert parse_route_limits("") == {}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("GET /orders", "'GET /orders' is not `METHOD /path=limit`"),
        ("/orders=1/second", "'/orders=1/second' is not `METHOD /path=limit`"),
        ("GET orders=1/second", "'GET orders=1/second' is not `METHOD /path=limit`"),
        ("FETCH /orders=1/second", "unknown method 'FETCH'"),
        ("get /orders=1/second", "unknown method 'get'"),
        ("GET /orders=often", "'GET /orders=often' has no valid limit"),
        ("GET /orders=1/second;GET /orders=2/second", "GET /orders is given twice"),
    ],
)
def test_rate_limits_that_cannot_be_read_are_refused_naming_the_entry(
    text: str, named: str
) -> None:
    with pytest.raises(InvalidRateLimits, match=f"^RATE_LIMITS: .*{re.escape(named)}"):
        parse_route_limits(text)


def crashing_app(**settings: str) -> FastAPI:
    app = FastAPI()

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("a bug")

    install_rate_limits(
        app,
        service="test",
        settings=ServiceSettings(port=1, database_url="postgresql+asyncpg://db/test", **settings),  # type: ignore[arg-type]
        tokens=TokenVerifier(StaticKeys([])),
        metrics=Metrics(),
    )
    return app


async def test_an_unhandled_error_is_answered_with_the_rate_limit_fields() -> None:
    transport = httpx.ASGITransport(app=crashing_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/crash")

    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["ratelimit-policy"] == '"reads";q=500;w=1'
    assert answer.headers["ratelimit"] == '"reads";r=499;t=1'


def test_a_route_limit_for_a_route_the_app_lacks_refuses_to_build_it() -> None:
    with pytest.raises(InvalidRateLimits, match=r"test has no route DELETE /crash; its routes"):
        crashing_app(RATE_LIMITS="DELETE /crash=1/second")
