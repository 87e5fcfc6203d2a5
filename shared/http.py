"""The HTTP edge shared by both services: problem details, versions in headers, auth, ops routes.

- Every error is an RFC 9457 problem (`application/problem+json`), including validation errors
  (422, naming the field) and the framework's own 404/405.
- Versions travel as strong ETags (`"3"`); `If-Match` parsing distinguishes missing (428) from
  unparseable (412: it cannot match any version).
- `/healthz` says the process is alive; `/readyz` checks the database and the broker, so a load
  balancer stops sending traffic to a replica that cannot do its work.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from aio_pika.abc import AbstractConnection
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.responses import JSONResponse
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import TokenVerifier
from shared.db import STALE_SERVER_SQLSTATES
from shared.envelope import TRACEPARENT_PATTERN
from shared.errors import (
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    PreconditionRequired,
    StaleVersion,
    TooManyRequests,
    Unauthorized,
)
from shared.metrics import Metrics
from shared.tracing import request_span

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_STATUS_OF: dict[type[DomainError], tuple[int, str]] = {
    NotFound: (404, "Not Found"),
    Conflict: (409, "Conflict"),
    Invalid: (422, "Unprocessable Content"),
    Unauthorized: (401, "Unauthorized"),
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

    async def dependency_down(_: Request, error: Exception) -> Response:
        if not _database_unavailable(error):
            log.error("database error while serving a request", exc_info=error)
            return problem(500, "Internal Server Error", "unexpected database error")
        log.warning("database unavailable while serving a request: %r", error)
        return _retry_shortly("the database is unavailable; retry shortly")

    app.add_exception_handler(DomainError, domain_error)

    async def pool_exhausted(_: Request, error: Exception) -> Response:
        log.warning("no database connection free while serving a request: %s", error)
        return _retry_shortly("every database connection is busy; retry shortly")

    app.add_exception_handler(DBAPIError, dependency_down)
    # The hot statements run on the driver, whose errors SQLAlchemy never wraps.
    app.add_exception_handler(asyncpg.PostgresError, dependency_down)
    app.add_exception_handler(asyncpg.InterfaceError, dependency_down)
    app.add_exception_handler(PoolTimeout, pool_exhausted)
    app.add_exception_handler(OSError, dependency_down)
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


def _database_unavailable(error: Exception) -> bool:
    """The database could not do the work right now, and a retry may well succeed: the
    connection was lost or refused, the server is shutting down or starting up, or it no
    longer takes writes (a failover or switchover in progress)."""
    if isinstance(error, OSError | OperationalError | InterfaceError | asyncpg.InterfaceError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    original = error.orig if isinstance(error, DBAPIError) else error
    code = str(getattr(original, "sqlstate", None) or "")
    return code[:2] in {"08", "57"} or code in STALE_SERVER_SQLSTATES


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int:
    """The version an `If-Match` header asks for; 428 when missing, 412 when it cannot match."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("this request needs an If-Match header with the ETag you hold")
    match = _ETAG.fullmatch(if_match.strip())
    if match is None:
        raise StaleVersion(f"If-Match {if_match!r} matches no version of this resource")
    return int(match["version"])


_ETAG = re.compile(r'(?:W/)?"(?P<version>[0-9]{1,9})"')


class BearerUser(SecurityBase):
    """The caller's user id, from the bearer token in `Authorization`.

    One dependency where `HTTPBearer` plus a dependency on it made two: FastAPI resolves each
    level of dependencies per request, and on a single-row read that was a tenth of the work.
    Declared as the same `HTTPBearer` security scheme in the OpenAPI document, and the header
    is read the way `HTTPBearer` reads it.
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(description="Access token from user_svc POST /auth/token")
        self.scheme_name = "HTTPBearer"

    async def __call__(self, request: Request) -> UUID:
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing bearer token")
        tokens: TokenVerifier = request.app.state.tokens
        return await tokens.user_id(token)


CurrentUserId = Annotated[UUID, Depends(BearerUser())]


def ops_router(
    *, engine: AsyncEngine, amqp: Callable[[], AbstractConnection | None], metrics: Metrics
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", response_model=None)
    async def readyz() -> dict[str, Any] | JSONResponse:
        checks = {"database": await _database_ok(engine), "broker": _broker_ok(amqp())}
        if all(checks.values()):
            return {"status": "ready", "checks": checks}
        failing = ", ".join(name for name, ok in checks.items() if not ok)
        return problem(
            503, "Service Unavailable", f"not ready: {failing} unreachable", checks=checks
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


async def _database_ok(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def _broker_ok(connection: AbstractConnection | None) -> bool:
    # A robust connection is never "closed" while it reconnects; `connected` says if it is up.
    return connection is not None and not connection.is_closed and connection.connected.is_set()


def install_observability_middleware(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(Observability, metrics=metrics)


class Observability:
    """Count and time every request, and run it in a server span continuing the caller's trace.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs each
    request in an extra task with a memory stream, which cost more than the rest of a simple
    read (see README Performance).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        traceparent = _traceparent(dict(scope["headers"]).get(b"traceparent"))
        with request_span(method, traceparent=traceparent) as span:
            try:
                await self._app(scope, receive, recording_send)
            finally:
                route = _route_template(scope)
                if span.is_recording():
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.request.method", method)
                    span.set_attribute("http.route", route)
                    span.set_attribute("http.response.status_code", status)
                self._metrics.http_requests.labels(method, route, str(status)).inc()
                self._metrics.http_request_duration.labels(method, route).observe(
                    time.perf_counter() - started
                )


def _route_template(scope: Scope) -> str:
    """The route's path template (`/orders/{order_id}`), so ids do not explode label cardinality."""
    return str(getattr(scope.get("route"), "path", "unmatched"))


_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)


def _traceparent(header: bytes | None) -> str | None:
    """The caller's W3C trace context, if it sent a well-formed one."""
    value = header.decode("latin-1") if header else None
    return value if value and _TRACEPARENT.fullmatch(value) else None


def install_request_size_limit(app: FastAPI, max_bytes: int) -> None:
    app.add_middleware(RequestSizeLimit, max_bytes=max_bytes)


class RequestSizeLimit:
    """Refuse request bodies over `max_bytes` with 413, before they are read into memory.

    Both a declared `Content-Length` and the bytes actually received count, so a chunked body
    cannot slip past the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            await self._refuse(scope, receive, send)
            return
        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self._max and not refused:
                # Answer now and tell the app the client went away; whatever it still tries
                # to send is dropped below.
                refused = True
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self._app(scope, counting_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413, "Content Too Large", f"request bodies are limited to {self._max} bytes"
        )
        await response(scope, receive, send)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def problem_response(description: str, **extra: Any) -> dict[str, Any]:
    """An OpenAPI response entry for a problem a route can answer besides the usual ones."""
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {"description": description, "content": content, **extra}


RATE_LIMITED = problem_response(
    "Too many attempts from this client or for this account",
    headers={"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
)


def document_problems(app: FastAPI) -> None:
    """Make the OpenAPI document say what the API really sends for invalid input: a problem
    (`application/problem+json`), not FastAPI's default validation error shape."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                if "422" in operation.get("responses", {}):
                    operation["responses"]["422"] = {
                        "description": "Invalid input, naming the field",
                        "content": {
                            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                        },
                    }
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
