"""Failures of the database answer as retryable problems, never as a bare 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
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


async def answer_to(error: Exception) -> httpx.Response:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/fails")
    async def fails() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get("/fails")


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_driver_statement_that_loses_its_server_gets_503_with_retry_after(
    error: Exception,
) -> None:
    """A failover seen by a statement run on the driver directly (`HotQuery`), which
    SQLAlchemy never wraps: the same retryable answer as through SQLAlchemy."""
    response = await answer_to(error)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_a_driver_error_that_is_not_an_outage_is_a_500() -> None:
    response = await answer_to(asyncpg.UniqueViolationError("duplicate key value"))

    assert response.status_code == 500
