"""Failures of the database answer as retryable problems, never as a bare 500."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from shared.web.problems import install_problem_handlers


async def answer_to(error: Exception) -> httpx.Response:
    """The response to a request whose handler failed with `error`."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/failing")
    async def failing() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get("/failing")


async def test_a_request_that_finds_no_free_database_connection_gets_503_with_retry_after() -> None:
    # What asyncpg's pool raises when no connection frees up within the acquire timeout.
    response = await answer_to(TimeoutError())

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_request_whose_database_is_unreachable_or_failing_over_gets_503_with_retry_after(
    error: Exception,
) -> None:
    response = await answer_to(error)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_database_error_that_is_not_an_outage_is_a_500() -> None:
    response = await answer_to(asyncpg.UniqueViolationError("duplicate key value"))

    assert response.status_code == 500
