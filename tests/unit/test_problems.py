"""Failures of the database answer as retryable problems, never as a bare 500."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.http import install_problem_handlers


async def test_a_request_that_finds_no_free_database_connection_gets_503_with_retry_after() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/busy")
    async def busy() -> None:
        raise PoolTimeout("QueuePool limit of size 20 overflow 0 reached")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        response = await client.get("/busy")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
