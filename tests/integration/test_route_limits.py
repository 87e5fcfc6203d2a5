"""Every API route is rate-limited per client (contract: "Common HTTP rules").

The services run in-process against the real PostgreSQL and, where the counters are shared, the
real local Redis (each test under a key prefix of its own). Two replicas as separate processes
are in `tests/e2e/test_rate_limits.py`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi import FastAPI

from order_svc.app import create_app as create_order_app
from order_svc.settings import OrderSettings
from shared.web.rate_limits import STORE_TIMEOUT_SECONDS
from tests.support.redis import REDIS
from tests.support.settings import JWT_SECRET, SIGNING_KEY
from tests.support.waiting import eventually
from user_svc.app import create_app as create_user_app
from user_svc.settings import UserSettings

pytestmark = pytest.mark.integration

ORDER = {"items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 100}]}
PASSWORD = "correct horse battery"

Client = Callable[..., httpx.AsyncClient]


def order_app(order_db: str, **settings: str) -> FastAPI:
    return create_order_app(
        OrderSettings(ORDER_SVC_DATABASE_URL=order_db, JWT_SECRET=JWT_SECRET, **settings)  # type: ignore[arg-type]
    )


def user_app(user_db: str, **settings: str) -> FastAPI:
    return create_user_app(
        UserSettings(USER_SVC_DATABASE_URL=user_db, JWT_SECRET=JWT_SECRET, **settings)  # type: ignore[arg-type]
    )


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """`client(app, address, user)`: an HTTP client of `app` from `address`, signed in as `user`
    when one is given."""
    opened: list[httpx.AsyncClient] = []

    def open_client(
        app: FastAPI, address: str = "10.0.0.1", user: uuid.UUID | None = None
    ) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token(user)}"} if user else {}
        transport = httpx.ASGITransport(app=app, client=(address, 40_000))
        opened.append(
            httpx.AsyncClient(transport=transport, base_url="http://svc", headers=headers)
        )
        return opened[-1]

    yield open_client
    for opened_client in opened:
        await opened_client.aclose()


def token(user: uuid.UUID | None) -> str:
    return SIGNING_KEY.issue(user or uuid.uuid4(), ttl_seconds=600)


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["status"] == 429


def storage_errors(metrics_text: str) -> float:
    match = re.search(r"^rate_limit_storage_errors_total (\S+)$", metrics_text, re.MULTILINE)
    assert match is not None, "rate_limit_storage_errors_total is not exported"
    return float(match[1])


@contextmanager
def closed_port() -> Iterator[int]:
    """A local port nothing listens on (bound, so nothing else takes it, but not listening)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


async def test_a_route_over_its_own_limit_gets_429_and_its_handler_does_not_run(
    order_db: str, client: Client
) -> None:
    user = uuid.uuid4()
    orders = client(order_app(order_db, RATE_LIMITS="POST /orders=3/minute"), user=user)

    answers = [await orders.post("/orders", json=ORDER) for _ in range(4)]

    assert [a.status_code for a in answers[:3]] == [202, 202, 202]
    assert_rate_limited(answers[3])
    assert answers[3].json()["violated-policies"] == ["POST /orders"]
    assert len((await orders.get("/orders")).json()["items"]) == 3


async def test_a_route_limit_applies_to_that_route_only(order_db: str, client: Client) -> None:
    app = order_app(order_db, RATE_LIMITS="GET /orders/{order_id}=1/minute")
    orders = client(app, user=uuid.uuid4())
    first = await orders.get(f"/orders/{uuid.uuid4()}")

    other_route = await orders.get("/orders")
    same_route = await orders.get(f"/orders/{uuid.uuid4()}")

    assert first.headers["ratelimit-policy"] == '"GET /orders/{order_id}";q=1;w=60'
    assert other_route.status_code == 200
    assert_rate_limited(same_route)


async def test_reads_and_writes_are_limited_separately(order_db: str, client: Client) -> None:
    orders = client(
        order_app(order_db, RATE_LIMIT_READS="2/minute", RATE_LIMIT_WRITES="2/minute"),
        user=uuid.uuid4(),
    )
    reads = [await orders.get("/orders") for _ in range(3)]

    writes = [await orders.post("/orders", json=ORDER) for _ in range(3)]

    assert [r.status_code for r in reads] == [200, 200, 429]
    assert [w.status_code for w in writes] == [202, 202, 429]


async def test_each_signed_in_user_has_a_limit_of_their_own(order_db: str, client: Client) -> None:
    app = order_app(order_db, RATE_LIMIT_READS="2/minute")
    spent = client(app, "10.0.0.1", uuid.uuid4())
    await spent.get("/orders")
    await spent.get("/orders")

    other_user = await client(app, "10.0.0.1", uuid.uuid4()).get("/orders")
    spent_user = await spent.get("/orders")

    assert other_user.status_code == 200
    assert_rate_limited(spent_user)


async def test_a_token_that_does_not_verify_counts_against_the_client_address(
    order_db: str, client: Client
) -> None:
    app = order_app(order_db, RATE_LIMIT_READS="2/minute")
    forged = {"Authorization": "Bearer not-a-token"}
    for _ in range(2):
        assert (await client(app, "10.0.0.7").get("/orders", headers=forged)).status_code == 401

    answer = await client(app, "10.0.0.7").get("/orders")

    assert_rate_limited(answer)


async def test_every_api_response_carries_the_rate_limit_fields(
    order_db: str, client: Client
) -> None:
    app = order_app(order_db, RATE_LIMIT_READS="100/minute", MAX_REQUEST_BYTES="1024")
    orders = client(app, "10.0.0.1", uuid.uuid4())
    anonymous = client(app, "10.0.0.2")
    responses = [
        await orders.post("/orders", json=ORDER),  # 202
        await orders.get("/orders"),  # 200
        await orders.get(f"/orders/{uuid.uuid4()}"),  # 404
        await orders.get("/no/such/route"),  # 404 from the router
        await orders.post("/orders", json={"items": []}),  # 422
        await orders.post("/orders", content=b"x" * 2048),  # 413
        await anonymous.get("/orders"),  # 401
    ]

    assert sorted({r.status_code for r in responses}) == [200, 202, 401, 404, 413, 422]
    for response in responses:
        policy = response.headers["ratelimit-policy"]
        assert policy in {'"reads";q=100;w=60', '"writes";q=200;w=1'}, response
        assert re.fullmatch(r'"(reads|writes)";r=\d+;t=\d+', response.headers["ratelimit"])


async def test_the_fields_count_down_the_clients_quota(order_db: str, client: Client) -> None:
    orders = client(order_app(order_db, RATE_LIMIT_READS="5/minute"), user=uuid.uuid4())

    answers = [await orders.get("/orders") for _ in range(6)]

    assert {a.headers["ratelimit-policy"] for a in answers} == {'"reads";q=5;w=60'}
    remaining = [int(re.findall(r";r=(\d+)", a.headers["ratelimit"])[0]) for a in answers]
    assert remaining == [4, 3, 2, 1, 0, 0]
    assert answers[5].status_code == 429


async def test_a_server_error_carries_the_rate_limit_fields(order_db: str, client: Client) -> None:
    with closed_port() as port:
        down = order_db.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
        orders = client(order_app(down), user=uuid.uuid4())

        answer = await orders.get(f"/orders/{uuid.uuid4()}")

    assert answer.status_code == 503
    assert answer.headers["ratelimit-policy"] == '"reads";q=500;w=1'
    assert answer.headers["ratelimit"].startswith('"reads";r=499;')


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_health_readiness_metrics_and_documents_are_never_limited(
    order_db: str, client: Client, path: str
) -> None:
    app = order_app(order_db, RATE_LIMIT_READS="1/minute")
    answers = [await client(app).get(path) for _ in range(3)]

    assert 429 not in [a.status_code for a in answers]
    assert all("ratelimit" not in a.headers for a in answers)


async def test_replicas_sharing_redis_count_one_login_limit(
    user_db: str, client: Client, redis_key_prefix: str
) -> None:
    shared = {
        "RATE_LIMIT_STORAGE_URL": REDIS,
        "RATE_LIMIT_KEY_PREFIX": redis_key_prefix,
        "LOGIN_RATE_LIMIT": "3/minute",
    }
    replicas = [user_app(user_db, **shared), user_app(user_db, **shared)]
    form = {"username": "nobody@example.com", "password": "wrong password"}

    answers = [await client(replicas[n % 2]).post("/auth/token", data=form) for n in range(4)]

    assert [a.status_code for a in answers[:3]] == [401, 401, 401]
    assert_rate_limited(answers[3])


async def test_limits_fail_open_and_count_the_error_while_redis_is_unreachable(
    order_db: str, client: Client
) -> None:
    with closed_port() as port:
        app = order_app(
            order_db,
            RATE_LIMIT_READS="1/minute",
            RATE_LIMIT_STORAGE_URL=f"redis://127.0.0.1:{port}",
        )
        orders = client(app, user=uuid.uuid4())

        answers = [await orders.get("/orders") for _ in range(3)]
        metrics = await client(app).get("/metrics")

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a.headers["ratelimit"] for a in answers} == {'"reads";r=1'}
    assert storage_errors(metrics.text) >= 1


async def test_an_outage_of_redis_is_logged_once_however_many_requests_fail(
    order_db: str, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with closed_port() as port:
        app = order_app(order_db, RATE_LIMIT_STORAGE_URL=f"redis://127.0.0.1:{port}")
        orders = client(app, user=uuid.uuid4())

        async def failed_twice() -> bool:
            await orders.get("/orders")
            return storage_errors((await client(app).get("/metrics")).text) >= 2

        with caplog.at_level(logging.ERROR, logger="shared.web.rate_limits"):
            await eventually(failed_twice, timeout=10, what="two failed store calls")

    assert len([r for r in caplog.records if r.name == "shared.web.rate_limits"]) == 1


async def test_a_redis_that_never_answers_does_not_hold_requests(
    order_db: str, client: Client
) -> None:
    connections: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    silent = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        app = order_app(order_db, RATE_LIMIT_STORAGE_URL=f"redis://127.0.0.1:{port}")
        orders = client(app, user=uuid.uuid4())
        started = time.monotonic()

        answer = await orders.get("/orders")

        waited = time.monotonic() - started
        metrics = await client(app).get("/metrics")
    finally:
        silent.close()
        for connection in connections:
            connection.close()

    assert answer.status_code == 200
    assert waited < STORE_TIMEOUT_SECONDS + 1
    assert storage_errors(metrics.text) == 1
