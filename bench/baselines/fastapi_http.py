"""Reference `fastapi_http_get_rps`: the bare baseline's read, written as the smallest FastAPI app.

The same statement on the same pool as `raw_http` (order_svc's read), behind one FastAPI route
with a typed path parameter and a dict answer: no middleware, no token, no response model. It
separates what the framework itself costs (`fastapi_http_get_rps / raw_http_get_rps`) from what
order_svc adds on top of it (`http_get_rps / fastapi_http_get_rps`, a target).

Run as its own process: `python -m bench.baselines.fastapi_http DATABASE_URL PORT`.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import FastAPI, HTTPException, Request

from bench.baselines.raw_http import POOL_MAX, POOL_MIN, QUERY, serve
from shared.persistence.database import dsn


def create_app(database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with asyncpg.create_pool(
            dsn(database_url), min_size=POOL_MIN, max_size=POOL_MAX
        ) as pool:
            app.state.pool = pool
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/orders/{order_id}")
    async def read_order(order_id: UUID, request: Request) -> dict[str, Any]:
        async with request.app.state.pool.acquire() as connection:
            row = await connection.fetchrow(QUERY, order_id)
        if row is None:
            raise HTTPException(404)
        return dict(row)

    return app


def main(argv: list[str]) -> None:
    database_url, port = argv[1], int(argv[2])
    serve(create_app(database_url), port)


if __name__ == "__main__":
    main(sys.argv)
