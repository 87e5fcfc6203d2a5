"""A per-client rate limit on every route of a service's HTTP API (contract: "Common HTTP rules").

Each request falls under one policy: its route's own (`RATE_LIMITS`, routes named as in the
service's OpenAPI document), else `reads` (the safe methods: GET, HEAD, OPTIONS, TRACE) or
`writes` (every other method), unmatched paths included, so probing for routes is limited too.
Health, readiness, metrics and the API documents are never limited. The client is the subject
of a bearer token that verifies, else the peer address: a made-up or expired token buys no
quota of its own.

Over the limit the answer is 429 problem+json with `Retry-After`, before the request reaches
its route, so nothing changes. Every response of a limited request, whatever its status,
carries the IETF `RateLimit-Policy` and `RateLimit` fields, in the structured-field syntax of
draft-ietf-httpapi-ratelimit-headers (-08 and later): `RateLimit-Policy: "reads";q=500;w=1` and
`RateLimit: "reads";r=499;t=1`. While the store cannot be asked, nothing is counted and
`RateLimit` says the whole quota remains, without `t`.

Counting uses the sliding-window counter of `limits`: two counters per client and policy, one
atomic script per check. The moving window would keep one entry per request in the window, so
its memory and its work per check grow with the limit; a fixed window lets a client spend twice
its quota across a window boundary.

A plain ASGI middleware rather than a route dependency: it answers before the body is read or
the route's dependencies run, and it also covers what no route handles (404, 405, 413).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import limits
from fastapi import FastAPI
from fastapi.security.utils import get_authorization_scheme_param
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import Unauthorized
from shared.web.problems import problem
from shared.web.rate_limits import Limiter, RateLimitStore, Usage
from shared.web.tokens import TokenVerifier

if TYPE_CHECKING:
    from shared.observability.metrics import Metrics
    from shared.settings import ServiceSettings

READS = "reads"
WRITES = "writes"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# The methods an OpenAPI path item can have operations for.
HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

Route = tuple[str, str]
"""An operation as the OpenAPI document names it: (method, path template)."""


class InvalidRateLimits(ValueError):
    """`RATE_LIMITS` cannot be applied as written."""


def parse_route_limits(text: str) -> dict[Route, limits.RateLimitItem]:
    """`GET /orders/{order_id}=50/second;POST /orders=10/second` as {route: limit}.

    Entries are separated by `;` (empty ones ignored); each is a method, one space, a path
    template, `=` and one limit in the `limits` notation.
    """
    parsed: dict[Route, limits.RateLimitItem] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        route_text, equals, limit_text = entry.partition("=")
        method, space, path = route_text.strip().partition(" ")
        if not equals or not space or not path.strip().startswith("/"):
            raise InvalidRateLimits(
                f"RATE_LIMITS: {entry!r} is not `METHOD /path=limit` "
                "(e.g. `GET /orders/{order_id}=50/second`)"
            )
        if method not in HTTP_METHODS:
            raise InvalidRateLimits(
                f"RATE_LIMITS: {entry!r} has unknown method {method!r} "
                f"(one of {', '.join(sorted(HTTP_METHODS))})"
            )
        route = (method, path.strip())
        if route in parsed:
            raise InvalidRateLimits(f"RATE_LIMITS: {' '.join(route)} is given twice")
        try:
            parsed[route] = limits.parse(limit_text.strip())
        except ValueError as error:
            raise InvalidRateLimits(
                f"RATE_LIMITS: {entry!r} has no valid limit ({error}); "
                "write it like `50/second` or `1000/minute`"
            ) from error
    return parsed


@dataclass(frozen=True)
class Policy:
    """A named quota (`reads`, `writes`, or a route's own) and its `RateLimit-Policy` item."""

    name: str
    limit: limits.RateLimitItem

    @cached_property
    def item(self) -> str:
        return f"{_sf_string(self.name)};q={self.limit.amount};w={self.limit.get_expiry()}"

    def usage_item(self, usage: Usage) -> str:
        """The `RateLimit` item: what is left, and in how many seconds more comes back."""
        if usage.remaining is None:
            return f"{_sf_string(self.name)};r={self.limit.amount}"
        return f"{_sf_string(self.name)};r={usage.remaining};t={usage.reset_after}"


def _sf_string(value: str) -> str:
    """A structured-field String (RFC 9651): printable ASCII in quotes, `"` and `\\` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RoutePolicies:
    """Which policy a request falls under: the first route whose method and template match, in
    the order of the OpenAPI document (paths in the order their first route was added, as the
    app tries them), else `reads` or `writes` by method."""

    def __init__(
        self,
        *,
        routes: Iterable[Route],
        reads: limits.RateLimitItem,
        writes: limits.RateLimitItem,
        overrides: Mapping[Route, limits.RateLimitItem],
        never_limited: Iterable[str],
        service: str,
    ) -> None:
        self._never_limited = frozenset(never_limited)
        known = [route for route in routes if route[1] not in self._never_limited]
        for route in overrides:
            if route[1] in self._never_limited:
                raise InvalidRateLimits(f"RATE_LIMITS: {' '.join(route)} is never limited")
            if route not in known:
                raise InvalidRateLimits(
                    f"RATE_LIMITS: {service} has no route {' '.join(route)}; its routes are "
                    + ", ".join(" ".join(r) for r in known)
                )
        self._by_method = {READS: Policy(READS, reads), WRITES: Policy(WRITES, writes)}
        self._routes: dict[str, list[tuple[re.Pattern[str], Policy]]] = {}
        for method, path in known:
            limit = overrides.get((method, path))
            policy = (
                Policy(f"{method} {path}", limit)
                if limit is not None
                else self._by_method[READS if method in READ_METHODS else WRITES]
            )
            self._routes.setdefault(method, []).append((_template(path), policy))

    def of(self, scope: Scope) -> Policy | None:
        """The request's policy; None when it is never limited."""
        path: str = scope["path"]
        if path in self._never_limited:
            return None
        method: str = scope["method"]
        for pattern, policy in self._routes.get(method, ()):
            if pattern.fullmatch(path):
                return policy
        return self._by_method[READS if method in READ_METHODS else WRITES]


def _template(path: str) -> re.Pattern[str]:
    """A path template's pattern: each `{parameter}` one segment, as Starlette matches it."""
    parts = re.split(r"\{[^}]+\}", path)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def openapi_routes(app: FastAPI) -> list[Route]:
    """Every operation of the app's OpenAPI document, in routing order."""
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method.upper() in HTTP_METHODS
    ]


def never_limited_paths(app: FastAPI) -> frozenset[str]:
    """The paths no limit applies to: health, readiness, metrics and the app's API documents."""
    documents = (
        app.openapi_url,
        app.docs_url,
        app.swagger_ui_oauth2_redirect_url,
        app.redoc_url,
    )
    return OPS_PATHS | {url for url in documents if url is not None}


class RateLimiting:
    """Count each request against its policy; refuse it over the limit; label every response."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policies: RoutePolicies,
        limiter: Limiter,
        tokens: TokenVerifier,
        service: str,
    ) -> None:
        self._app = app
        self._policies = policies
        self._limiter = limiter
        self._tokens = tokens
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self._policies.of(scope) if scope["type"] == "http" else None
        if policy is None:
            await self._app(scope, receive, send)
            return
        client = await self._client(scope)
        usage = await self._limiter.hit(policy.limit, self._service, policy.name, client)
        headers = {"RateLimit-Policy": policy.item, "RateLimit": policy.usage_item(usage)}
        if not usage.allowed:
            refusal = problem(
                429,
                "Too Many Requests",
                f"over the {policy.name} limit of {policy.limit.amount} requests per "
                f"{policy.limit.get_expiry()} s; retry in {usage.retry_after} s",
                headers={**headers, "Retry-After": str(usage.retry_after)},
                **{"violated-policies": [policy.name]},
            )
            await refusal(scope, receive, send)
            return
        raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
        started = False

        async def labelled_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), *raw]}
            await send(message)

        try:
            await self._app(scope, receive, labelled_send)
        except Exception:
            # Starlette answers an unhandled error outside every middleware, where these
            # headers cannot be added: answer it here, and let the error go on to be logged.
            if not started:
                failure = problem(500, "Internal Server Error", "unexpected error", headers=headers)
                await failure(scope, receive, send)
            raise

    async def _client(self, scope: Scope) -> str:
        authorization = next(
            (value for name, value in scope["headers"] if name == b"authorization"), None
        )
        if authorization is not None:
            scheme, token = get_authorization_scheme_param(authorization.decode("latin-1"))
            if scheme.lower() == "bearer" and token:
                try:
                    return f"user:{await self._tokens.user_id(token)}"
                except Unauthorized:
                    pass
        peer = scope.get("client")
        return f"address:{peer[0] if peer else 'unknown'}"


def install_rate_limits(
    app: FastAPI,
    *,
    service: str,
    settings: ServiceSettings,
    tokens: TokenVerifier,
    metrics: Metrics,
) -> None:
    """Limit every route of `app`: call it once every router is included, so that `RATE_LIMITS`
    is checked against the routes the service really has (a route it lacks refuses the start).

    The store is left on `app.state.rate_limits` for the service's other limits to count in.
    """
    store = RateLimitStore(
        settings.rate_limit_storage_url,
        key_prefix=settings.rate_limit_key_prefix,
        errors=metrics.rate_limit_storage_errors,
    )
    policies = RoutePolicies(
        routes=openapi_routes(app),
        reads=limits.parse(settings.rate_limit_reads),
        writes=limits.parse(settings.rate_limit_writes),
        overrides=parse_route_limits(settings.rate_limits),
        never_limited=never_limited_paths(app),
        service=service,
    )
    app.state.rate_limits = store
    app.add_middleware(
        RateLimiting,
        policies=policies,
        limiter=store.sliding_window(),
        tokens=tokens,
        service=service,
    )
