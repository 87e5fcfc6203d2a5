"""Baseline `raw_http_get_rps`: a bare ASGI endpoint doing one asyncpg row read and a JSON reply.

`GET /orders/{id}` does order_svc's read (the same statement on the same database), and is served
by uvicorn with exactly the configuration `shared.runtime.server.run` uses (one process, uvicorn's
default loop and HTTP implementation, no access log). What ours adds on top (FastAPI routing and
validation, the bearer-token check, rate limits, middleware, the response model) is what
`http_get_rps / raw_http_get_rps` prices.

Run as its own process: `python -m bench.baselines.raw_http DATABASE_URL PORT`.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

import asyncpg
import uvicorn

from shared.persistence.database import dsn
from shared.runtime.server import HTTP_DRAIN_SECONDS
from shared.settings import ServiceSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# order_svc's own read, written by hand: the order, its items (one array per column, in their
# order) and the customer's replica, in one statement.
QUERY = """
SELECT orders.id, orders.user_id, orders.status, orders.reason, orders.total, orders.version,
       orders.created_at, orders.updated_at,
       (SELECT array_agg(sku ORDER BY position) FROM order_items
        WHERE order_items.order_id = orders.id) AS skus,
       (SELECT array_agg(quantity ORDER BY position) FROM order_items
        WHERE order_items.order_id = orders.id) AS quantities,
       (SELECT array_agg(unit_price ORDER BY position) FROM order_items
        WHERE order_items.order_id = orders.id) AS unit_prices,
       customers.name AS customer_name, customers.status AS customer_status,
       customers.version AS customer_version
FROM orders LEFT OUTER JOIN customers ON customers.id = orders.user_id
WHERE orders.id = $1
"""
# Up to as many connections as the services' pool holds (DATABASE_POOL_SIZE, 20).
POOL_MIN, POOL_MAX = 10, 20


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class RawOrders:
    def __init__(self, database_url: str) -> None:
        self._dsn = dsn(database_url)
        self._pool: asyncpg.Pool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        if path == "/healthz":
            await _reply(send, 200, b'{"status":"ok"}')
            return
        prefix, _, raw_id = path.rpartition("/")
        try:
            order_id = uuid.UUID(raw_id)
        except ValueError:
            order_id = None
        if prefix != "/orders" or order_id is None or self._pool is None:
            await _reply(send, 404, b'{"title":"Not Found"}')
            return
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(QUERY, order_id)
        if row is None:
            await _reply(send, 404, b'{"title":"Not Found"}')
            return
        await _reply(send, 200, json.dumps(dict(row), default=_default).encode())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=POOL_MIN, max_size=POOL_MAX
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    await self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve(app: ASGIApp, port: int) -> None:
    """uvicorn as `shared.runtime.server.run` runs it with the services' default settings (the
    proxy headers of loopback trusted, no access log); both HTTP baselines are served by this."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=ServiceSettings.model_fields["access_log"].default,
        proxy_headers=True,
        forwarded_allow_ips=ServiceSettings.model_fields["forwarded_allow_ips"].default,
        timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
    )
    uvicorn.Server(config).run()


def main(argv: list[str]) -> None:
    database_url, port = argv[1], int(argv[2])
    serve(RawOrders(database_url), port)


if __name__ == "__main__":
    main(sys.argv)
