"""The middleware around every request: observed (counted, timed, traced, identified) and
size-limited.

Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs each
request in an extra task with a memory stream, which cost more than the rest of a simple read
(see docs/design/performance.md).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import FastAPI
from opentelemetry.trace import StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.messaging.envelope import TRACEPARENT_PATTERN
from shared.observability.logs import REQUEST_ID
from shared.observability.metrics import Metrics
from shared.observability.tracing import request_span
from shared.web.problems import problem

log = logging.getLogger(__name__)

# A caller's request id is kept if it is a plain token: it goes into every log line, so nothing
# that could forge or break one (spaces, quotes, control characters) and nothing unbounded.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")


def install_observability_middleware(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(Observability, metrics=metrics)


class Observability:
    """Count and time every request, run it in a server span continuing the caller's trace, and
    give it a request id: the caller's `X-Request-ID` if well-formed, else a new one, echoed in
    the response and on every log line written while it is served.

    The response also says how long the service took to produce it, in W3C `Server-Timing`
    (`app;dur=` milliseconds, from the request reaching this middleware to the response
    starting): a client that sees a slow answer can tell the service's time from the network's
    and its own, and browsers' developer tools show it.

    An error no handler answered is logged here, inside the request's span and ids, and
    answered with a 500 problem if nothing was sent yet; it goes no further, so the server does
    not log it a second time without them.
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
        headers = dict(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id"))
        echoed = (b"x-request-id", request_id.encode())
        status = 500
        responded = False

        async def identified_send(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                took = f"app;dur={(time.perf_counter() - started) * 1000:.3f}".encode()
                added = [*message.get("headers", ()), echoed, (b"server-timing", took)]
                message = {**message, "headers": added}
            await send(message)

        traceparent = _traceparent(headers.get(b"traceparent"))
        identity = REQUEST_ID.set(request_id)
        try:
            with request_span(method, traceparent=traceparent) as span:
                try:
                    await self._app(scope, receive, identified_send)
                except Exception as error:
                    log.exception("unhandled error serving %s %s", method, scope["path"])
                    span.record_exception(error)
                    if not responded:
                        await problem(500, "Internal Server Error", "unexpected error")(
                            scope, receive, identified_send
                        )
                finally:
                    route = _route_template(scope)
                    if span.is_recording():
                        span.update_name(f"{method} {route}")
                        span.set_attributes(
                            {
                                "http.request.method": method,
                                "http.route": route,
                                "http.response.status_code": status,
                            }
                        )
                        if status >= 500:
                            span.set_status(StatusCode.ERROR)
                    self._metrics.http_requests.labels(method, route, str(status)).inc()
                    self._metrics.http_request_duration.labels(method, route).observe(
                        time.perf_counter() - started
                    )
        finally:
            REQUEST_ID.reset(identity)


def _route_template(scope: Scope) -> str:
    """The route's path template as the OpenAPI document writes it (`/orders/{order_id}`, without
    a converter), so ids do not explode label cardinality."""
    return str(getattr(scope.get("route"), "path_format", "unmatched"))


_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)


def _traceparent(header: bytes | None) -> str | None:
    """The caller's W3C trace context, if it sent a well-formed one."""
    value = header.decode("latin-1") if header else None
    return value if value and _TRACEPARENT.fullmatch(value) else None


def _request_id(header: bytes | None) -> str:
    """The caller's request id if it is well-formed, else a new one."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header.decode("ascii")
    return uuid.uuid4().hex


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
