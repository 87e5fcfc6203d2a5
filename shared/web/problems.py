"""Problem details (RFC 9457): every error the HTTP API answers, in one shape.

Every error is `application/problem+json`, including validation errors (422, naming the field),
the framework's own 404/405, and a database that cannot be reached (503 with `Retry-After`: the
request may be tried again). Domain errors are mapped to their status here, so the domain and
the handlers raise them without knowing HTTP.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    PreconditionRequired,
    StaleVersion,
    TooManyRequests,
    Unauthorized,
)
from shared.persistence.database import UNAVAILABLE

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_STATUS_OF: dict[type[DomainError], tuple[int, str]] = {
    NotFound: (404, "Not Found"),
    Conflict: (409, "Conflict"),
    Invalid: (422, "Unprocessable Content"),
    Unauthorized: (401, "Unauthorized"),
    Forbidden: (403, "Forbidden"),
    PreconditionRequired: (428, "Precondition Required"),
    StaleVersion: (412, "Precondition Failed"),
    TooManyRequests: (429, "Too Many Requests"),
}


def problem(
    status: int, title: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    async def domain_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, DomainError)
        status, title = next(
            (v for k, v in _STATUS_OF.items() if isinstance(error, k)), (400, "Bad Request")
        )
        return problem(status, title, error.detail, headers=_headers_for(error))

    async def validation_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in error.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(422, "Unprocessable Content", detail, errors=errors)

    async def http_error(_: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        return problem(
            error.status_code,
            _reason(error.status_code),
            str(error.detail),
            headers=dict(error.headers or {}),
        )

    async def database_unavailable(_: Request, error: Exception) -> Response:
        if isinstance(error, TimeoutError):
            log.warning("the database did not answer in time while serving a request")
            return _retry_shortly("the database did not answer in time; retry shortly")
        log.warning("database unavailable while serving a request: %r", error)
        return _retry_shortly("the database is unavailable; retry shortly")

    app.add_exception_handler(DomainError, domain_error)
    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _retry_shortly(detail: str) -> JSONResponse:
    """A 503 the client may retry after a second: the database is down or saturated."""
    return problem(503, "Service Unavailable", detail, headers={"Retry-After": "1"})


def _headers_for(error: DomainError) -> dict[str, str] | None:
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, TooManyRequests):
        return {"Retry-After": str(error.retry_after)}
    return None


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
