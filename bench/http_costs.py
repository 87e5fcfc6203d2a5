"""`python -m bench.http_costs`: what each part of order_svc's `GET /orders/{id}` costs beyond the
smallest FastAPI app, in microseconds of CPU per request, without the network or the database.

Each app is called in this process as uvicorn would call it (an ASGI scope, `receive`,
`send`), one request after another; the read is answered from memory, the same row for every
app, so what is left is the framework and what the service puts around it. Each figure is the
best of many short rounds, taken in turns, so that other work on the machine inflates it as
little as possible. Not part of `make bench`: it explains `http_get_rps / fastapi_http_get_rps`,
it does not judge it.

- order_svc as it runs (`order_svc.app.create_app`, the `api` role), and without each of its
  middleware in turn (`app.user_middleware` before the app is first called);
- each middleware alone around an app that does nothing;
- FastAPI's cost of the route's dependencies: the same trivial route without any, with the
  bearer token and the caller's id, and with those, the `Response` and the queries as
  order_svc's route has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Annotated, Any

import limits
import uvloop
from fastapi import Depends, FastAPI, Request, Response

from bench.stack import RATE_LIMITS
from shared.web.auth import CurrentUserId

ROUNDS = 40
REQUESTS = 300
Message = MutableMapping[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

USER_ID, ORDER_ID = uuid.uuid4(), uuid.uuid4()
NOW = datetime.now(UTC)
ROW = {
    "id": ORDER_ID,
    "user_id": USER_ID,
    "status": "pending",
    "reason": None,
    "credit_reserved": False,
    "stock_reserved": False,
    "total": 3_250,
    "version": 1,
    "created_at": NOW,
    "updated_at": NOW,
    "skus": ["BOOK-0001", "PEN-0042"],
    "quantities": [2, 1],
    "unit_prices": [1_500, 250],
    "customer_name": "Ada",
    "customer_status": "active",
    "customer_version": 1,
}


class _Connection:
    async def fetchrow(self, *_: object) -> dict[str, Any]:
        return ROW


class _Pool:
    """Where the apps' reads go: the smallest FastAPI app's pool, and order_svc's database."""

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Connection]:
        yield _Connection()

    def connection(self) -> contextlib.AbstractAsyncContextManager[_Connection]:
        return self.acquire()


def _scope(path: str, token: str) -> Message:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 40_000),
        "server": ("127.0.0.1", 8_002),
    }


async def cpu_per_request(app: App, scope: Message, count: int) -> float:
    """Microseconds of CPU per request over `count` requests; every answer must be a 200."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: set[int] = set()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    started = time.process_time()
    for _ in range(count):
        await app(dict(scope), receive, send)
    spent = time.process_time() - started
    if statuses != {200}:
        raise RuntimeError(f"answers other than 200: {statuses}")
    return spent / count * 1e6


async def best_of(named: dict[str, tuple[App, Message]]) -> dict[str, float]:
    for name, (app, scope) in named.items():
        try:
            await cpu_per_request(app, scope, 50)
        except RuntimeError as error:
            raise RuntimeError(f"{name}: {error}") from error
    best = dict.fromkeys(named, float("inf"))
    for _ in range(ROUNDS):
        gc.collect()
        for name, (app, scope) in named.items():
            best[name] = min(best[name], await cpu_per_request(app, scope, REQUESTS))
    return {name: round(value, 1) for name, value in best.items()}


def _order_svc(token_keys_url: str, without: frozenset[str] = frozenset()) -> FastAPI:
    from order_svc.app import create_app
    from order_svc.queries import OrderQueries
    from order_svc.settings import OrderSettings
    from shared.runtime.roles import Role

    os.environ.update({**RATE_LIMITS, "JWKS_URL": token_keys_url})
    app = create_app(OrderSettings(), Role.API)
    app.state.queries = OrderQueries(_Pool())  # type: ignore[arg-type]
    app.user_middleware = [m for m in app.user_middleware if m.cls.__name__ not in without]
    return app


def _smallest_fastapi() -> FastAPI:
    from bench.baselines.fastapi_http import create_app

    app = create_app("postgresql://nobody@127.0.0.1:1/none")
    app.state.pool = _Pool()
    return app


async def _state(request: Request) -> object:
    """Stands for order_svc's `QueriesDep`: something the route takes from the app."""
    return request.app.state


def _dependency_apps() -> FastAPI:
    """The same trivial route with none, some and all of order_svc's route dependencies."""
    app = FastAPI()

    @app.get("/none/{order_id}")
    async def none(order_id: uuid.UUID, request: Request) -> dict[str, str]:
        return {}

    @app.get("/caller/{order_id}")
    async def caller(order_id: uuid.UUID, who: CurrentUserId) -> dict[str, str]:
        return {}

    @app.get("/all/{order_id}")
    async def all_of_them(
        order_id: uuid.UUID,
        who: CurrentUserId,
        response: Response,
        state: Annotated[object, Depends(_state)],
    ) -> dict[str, str]:
        return {}

    return app


def apps() -> dict[str, tuple[App, Message]]:
    """Each app compared, by name, with the request it answers."""
    from order_svc.settings import OrderSettings
    from shared.observability.metrics import Metrics
    from shared.web.middleware import Observability, RequestSizeLimit
    from shared.web.rate_limits import RateLimitStore
    from shared.web.route_limits import RateLimiting, RoutePolicies
    from shared.web.tokens import SigningKey, StaticKeys, TokenVerifier

    os.environ.update(RATE_LIMITS)
    key = SigningKey.from_secret(OrderSettings().jwt_secret.get_secret_value())
    token = key.issue(USER_ID, ttl_seconds=3_600)
    path = f"/orders/{ORDER_ID}"
    scope = _scope(path, token)
    keys_url = "http://127.0.0.1:1/jwks"

    async def nothing(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    metrics = Metrics()
    store = RateLimitStore(None, key_prefix="bench", errors=metrics.rate_limit_storage_errors)
    policies = RoutePolicies(
        routes=[("GET", "/orders/{order_id}")],
        reads=limits.parse(RATE_LIMITS["RATE_LIMIT_READS"]),
        writes=limits.parse(RATE_LIMITS["RATE_LIMIT_WRITES"]),
        overrides={},
        never_limited=["/healthz"],
        service="order_svc",
    )
    tokens = TokenVerifier(StaticKeys([key.public]))
    dependencies = _dependency_apps()
    dependencies.state.tokens = tokens
    return {
        "the smallest FastAPI app": (_smallest_fastapi(), scope),
        "order_svc": (_order_svc(keys_url), scope),
        "order_svc without Observability": (
            _order_svc(keys_url, frozenset({"Observability"})),
            scope,
        ),
        "order_svc without RateLimiting": (
            _order_svc(keys_url, frozenset({"RateLimiting"})),
            scope,
        ),
        "order_svc without any middleware": (
            _order_svc(keys_url, frozenset({"Observability", "RateLimiting", "RequestSizeLimit"})),
            scope,
        ),
        "an app that does nothing": (nothing, scope),
        "Observability around it": (Observability(nothing, metrics), scope),
        "RateLimiting around it": (
            RateLimiting(
                nothing,
                policies=policies,
                limiter=store.sliding_window(),
                tokens=tokens,
                service="order_svc",
            ),
            scope,
        ),
        "RequestSizeLimit around it": (RequestSizeLimit(nothing, 65_536), scope),
        "a route without dependencies": (dependencies, _scope(f"/none/{ORDER_ID}", token)),
        "with the caller's id (bearer token)": (dependencies, _scope(f"/caller/{ORDER_ID}", token)),
        "with order_svc's four dependencies": (dependencies, _scope(f"/all/{ORDER_ID}", token)),
    }


async def measure() -> dict[str, float]:
    results = await best_of(apps())
    for name, value in results.items():
        print(f"{name:40s} {value:7.1f} us of CPU per request", flush=True)
    return results


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(measure())
