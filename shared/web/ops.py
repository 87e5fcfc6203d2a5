"""The operations routes every process serves: `/healthz` (alive), `/readyz` (able to do its
work: each role brings the checks of what it runs) and `/metrics` (Prometheus text format).

A load balancer stops sending traffic to a replica whose `/readyz` fails, and an orchestrator
restarts one whose `/healthz` does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from shared.observability.metrics import Metrics
from shared.web.openapi import problem_response
from shared.web.problems import problem

# A readiness check: True when it passes. It never raises; a failure is False.
Check = Callable[[], Awaitable[bool]]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, bool]


def ops_router(*, checks: Mapping[str, Check], metrics: Metrics) -> APIRouter:
    """`/healthz`, `/readyz` and `/metrics`. `checks` are what this process needs to do its
    work (each role brings its own); `/readyz` runs them all and answers 503 if one fails."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", operation_id="getHealth")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model=Readiness,
        operation_id="getReadiness",
        # A problem without Retry-After: it names the checks that failed.
        responses={503: problem_response("Not ready: `checks` names what failed.")},
    )
    async def readyz() -> Readiness | JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        if all(results.values()):
            return Readiness(status="ready", checks=results)
        failing = ", ".join(name for name, ok in results.items() if not ok)
        return problem(503, "Service Unavailable", f"not ready: {failing}", checks=results)

    @router.get("/metrics", include_in_schema=False, operation_id="getMetrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
