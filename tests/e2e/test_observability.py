"""What a real service process tells about its requests, configured as an operator would: JSON
logs with the access log on, and the standard OpenTelemetry variables for its spans.

One user_svc `api` process (it needs no broker) on a database of its own, printing its spans with
the console exporter into the same log as its lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.persistence.database import drop_database
from tests.support.databases import new_database
from tests.support.processes import ServiceProcess, free_port
from tests.support.settings import JWT_SECRET, NO_RATE_LIMITS
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
SERVICE_NAME = "users-e2e"


@pytest.fixture(scope="module")
async def service(
    migrated_templates: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServiceProcess]:
    database = await new_database("user_svc")
    port = free_port()
    process = ServiceProcess(
        "user_svc",
        {
            **NO_RATE_LIMITS,
            "JWT_SECRET": JWT_SECRET,
            "USER_SVC_PORT": str(port),
            "USER_SVC_DATABASE_URL": database,
            # Nothing listens there: an api needs no broker.
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:9/",
            "LOG_FORMAT": "json",
            "ACCESS_LOG": "true",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_SERVICE_NAME": SERVICE_NAME,
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=e2e",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
        port,
        tmp_path_factory.mktemp("observability") / "user_svc.log",
        role="api",
    )
    process.start()
    try:
        await process.wait_ready()
        yield process
        process.stop()
    finally:
        process.kill()
        await drop_database(database)


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The process's log lines (one JSON object each), without the console exporter's spans."""
    parsed = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and "event" in line:
            parsed.append(line)
    return parsed


async def access_line(service: ServiceProcess, request_id: str) -> dict[str, Any]:
    async def written() -> dict[str, Any] | None:
        return next(
            (
                line
                for line in log_lines(service.log_path)
                if line.get("logger") == "uvicorn.access" and line.get("request_id") == request_id
            ),
            None,
        )

    return await eventually(written, timeout=10, what=f"the access line of {request_id}")


async def get(service: ServiceProcess, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{service.url}{path}", headers=headers)


async def test_the_access_line_carries_the_callers_request_id_and_trace_id(
    service: ServiceProcess,
) -> None:
    response = await get(
        service, "/healthz", **{"X-Request-ID": "e2e-request-1", "traceparent": TRACEPARENT}
    )

    assert response.headers["X-Request-ID"] == "e2e-request-1"
    line = await access_line(service, "e2e-request-1")
    assert "GET /healthz" in line["event"]
    assert line["trace_id"] == TRACE_ID


async def test_a_request_that_brings_no_ids_gets_both_on_its_access_line(
    service: ServiceProcess,
) -> None:
    response = await get(service, "/healthz")

    request_id = response.headers["X-Request-ID"]
    line = await access_line(service, request_id)
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"])
    assert line["trace_id"] != "0" * 32


async def test_spans_carry_the_service_name_and_resource_attributes_of_the_environment(
    service: ServiceProcess,
) -> None:
    await get(service, "/readyz", **{"traceparent": TRACEPARENT})

    async def exported() -> bool:
        text = service.log_path.read_text(encoding="utf-8")
        return (
            '"name": "GET /readyz"' in text
            and f'"service.name": "{SERVICE_NAME}"' in text
            and '"deployment.environment.name": "e2e"' in text
            and f'"trace_id": "0x{TRACE_ID}"' in text
        )

    await eventually(exported, timeout=10, what="the request's span on the console")
