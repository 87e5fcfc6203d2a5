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

    transport = httpx.ASGITransport(app=app)
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
        pytest.param(ConnectionRefusedError(), id="refused"),
        pytest.param(asyncpg.ConnectionDoesNotExistError(), id="connection-lost"),
        pytest.param(asyncpg.exceptions.AdminShutdownError(), id="server-shutting-down"),
        pytest.param(asyncpg.exceptions.ReadOnlySQLTransactionError(), id="now-a-standby"),
    ],
)
async def test_a_request_whose_database_is_unreachable_gets_503_with_retry_after(
    error: Exception,
) -> None:
    response = await answer_to(error)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
